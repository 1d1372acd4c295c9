-- Usage alerts: every member reads the thresholds and the alerts they fired; admins change the
-- thresholds through set_credit_alert_threshold / remove_credit_alert_threshold; alerts are
-- written only by app_private.record_credit_alert (no INSERT, UPDATE or DELETE grant on either).

select app_private.secure_table('app_public.credit_alert_thresholds');
grant select on app_public.credit_alert_thresholds to app_user;
create policy select_member on app_public.credit_alert_thresholds for select to app_user
  using (organization_id = any (current_setting('tenantbase.organization_ids')::uuid[]));

select app_private.secure_table('app_public.credit_alerts');
grant select on app_public.credit_alerts to app_user;
create policy select_member on app_public.credit_alerts for select to app_user
  using (organization_id = any (current_setting('tenantbase.organization_ids')::uuid[]));

grant execute on function
  app_public.set_credit_alert_threshold(uuid, app_public.credit_alert_kind, numeric, uuid, int),
  app_public.remove_credit_alert_threshold(uuid),
  app_public.set_credit_alert_emails(boolean)
to app_user;
