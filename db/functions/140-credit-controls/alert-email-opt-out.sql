-- Each admin turns the credit alert emails off (or on again) for themselves: a user setting
-- (user_settings.credit_alert_emails) the alert emails respect when they are sent
-- (alert-records.sql, credit_alert_recipients). Alerts are still recorded and published.

create or replace function app_public.set_credit_alert_emails(enabled boolean) returns app_public.user_settings
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_settings app_public.user_settings;
begin
  if app_public.current_user_id() is null then
    perform app_hidden.raise_error('NOT_AUTHENTICATED', 'Sign in to change your settings.');
  end if;
  insert into app_public.user_settings (user_id) values (app_public.current_user_id())
  on conflict (user_id) do nothing;
  update app_public.user_settings s
  set credit_alert_emails = coalesce(set_credit_alert_emails.enabled, s.credit_alert_emails)
  where s.user_id = app_public.current_user_id()
  returning * into v_settings;
  return v_settings;
end;
$$;
comment on function app_public.set_credit_alert_emails(boolean) is
  E'@resultFieldName userSettings\nTurns the credit alert emails (low balance, spend cap used, credits expiring) off or on for you, in every organization you administer.';
