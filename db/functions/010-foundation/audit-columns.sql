-- Audit columns: created_at and created_by are set on insert and cannot be changed; updated_at
-- follows every update. One trigger on every table.

-- created_at / created_by are set once on insert and kept on update; updated_at moves on every
-- update. Clients have no column privileges on them; this trigger is the only writer.
create or replace function app_private.tg_audit_columns() returns trigger
  language plpgsql volatile
  set search_path = pg_catalog, public
as $$
begin
  if tg_op = 'INSERT' then
    new.created_at := now();
    new.updated_at := now();
    new.created_by := coalesce(app_public.current_user_id(), new.created_by);
  else
    new.created_at := old.created_at;
    new.created_by := old.created_by;
    -- strictly increasing, even for two updates in one transaction
    new.updated_at := greatest(now(), old.updated_at + interval '1 millisecond');
  end if;
  return new;
end;
$$;
comment on function app_private.tg_audit_columns() is
  'Maintains created_at, created_by and updated_at; clients cannot write them.';

create or replace trigger _100_audit_columns before insert or update on app_public.users
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_private.invitation_sends
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_private.hourly_quota_usage
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_private.user_secrets
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_private.sessions
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_public.organizations
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_public.organization_members
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_public.audit_events
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_public.plans
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_public.usage_counters
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_public.usage_periods
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_public.projects
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_public.credit_accounts
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_public.credit_reservations
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert on app_public.credit_ledger
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_public.credit_grants
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_public.generations
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_public.invitations
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_private.invitation_tokens
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_public.organization_slug_redirects
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_public.organization_settings
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_public.user_settings
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_public.api_keys
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_private.api_key_secrets
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_private.billing_settings
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_public.credit_packages
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_private.stripe_customers
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_public.subscriptions
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_public.invoices
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_private.stripe_events
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_private.worker_heartbeats
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_private.operations_checks
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_private.backup_runs
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_private.job_counters
  for each row execute function app_private.tg_audit_columns();
