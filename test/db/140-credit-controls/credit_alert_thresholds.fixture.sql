insert into app_public.credit_alert_thresholds (organization_id, kind, balance_at_most, created_by)
select $1::uuid, 'low_balance', 1, $2::uuid
