-- The account settings: token lifetimes, idle expiry, what needs a verified address, attempt
-- limits. One row in app_private.account_settings, written by the server at start-up from its
-- environment (core/config.ts accountsConfig, db/account-settings.ts); SQL reads it here only.

create or replace function app_private.account_settings() returns app_private.account_settings
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
declare
  v_settings app_private.account_settings;
begin
  select * into v_settings from app_private.account_settings s where s.id;
  if not found then
    raise exception 'app_private.account_settings has no row (the accounts migration inserts it)';
  end if;
  return v_settings;
end;
$$;
comment on function app_private.account_settings() is 'The one row of account settings.';

create or replace trigger _100_audit_columns before insert or update on app_private.account_settings
  for each row execute function app_private.tg_audit_columns();
