select app_private.record_credit_alert($1::uuid, 'low_balance', balance_at_most => 1, available => 0)
where $2::uuid is not null
