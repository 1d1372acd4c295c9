-- The audit log: append-only, written by the changes it records, pruned after its retention.

create or replace function app_private.tg_append_only() returns trigger
  language plpgsql volatile
as $$
begin
  raise exception 'table %.% is append-only', tg_table_schema, tg_table_name
    using errcode = 'insufficient_privilege';
end;
$$;

create or replace function app_private.record_audit_event(
  organization_id uuid, action text, target_type text, target_id uuid, details jsonb
) returns void
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  -- PL/pgSQL keeps this plan per connection; as a security definer SQL function (never inlined)
  -- the insert was planned again on every call.
  insert into app_public.audit_events (organization_id, action, target_type, target_id, details)
  values (record_audit_event.organization_id, record_audit_event.action, record_audit_event.target_type,
          record_audit_event.target_id, coalesce(record_audit_event.details, '{}'));
end;
$$;

create or replace function app_private.tg_organization_members_audit() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  if tg_op = 'INSERT' then
    perform app_private.record_audit_event(new.organization_id, 'member.added', 'user', new.user_id,
      jsonb_build_object('role', new.role));
  elsif tg_op = 'UPDATE' then
    if new.role is distinct from old.role then
      perform app_private.record_audit_event(new.organization_id, 'member.role_changed', 'user', new.user_id,
        jsonb_build_object('from', old.role, 'to', new.role));
    end if;
  elsif tg_op = 'DELETE' then
    -- a cascade from deleting the organization leaves nothing to log into
    if exists (select 1 from app_public.organizations o where o.id = old.organization_id) then
      perform app_private.record_audit_event(old.organization_id, 'member.removed', 'user', old.user_id,
        jsonb_build_object('role', old.role));
    end if;
  end if;
  return null;
end;
$$;

-- The daily retention job: each organization's audit entries older than its
-- features.auditLogRetentionDays.
create or replace function app_private.prune_audit_events() returns bigint
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_settings app_public.organization_settings;
  v_count bigint := 0;
  v_deleted bigint;
  v_state text;
  v_message text;
begin
  perform set_config('tenantbase.allow_prune', 'on', true);
  -- One organization at a time, each in a subtransaction: a failure is rolled back alone and
  -- reported (400-operations/batch-failures.sql); the others are pruned.
  for v_settings in select * from app_public.organization_settings s order by s.organization_id loop
    begin
      with gone as (
        delete from app_public.audit_events a
        where a.organization_id = v_settings.organization_id
          and a.created_at < now() - make_interval(days => (v_settings.features ->> 'auditLogRetentionDays')::int)
        returning 1
      )
      select count(*) into v_deleted from gone;
      v_count := v_count + v_deleted;
    exception when others then
      get stacked diagnostics v_state = returned_sqlstate, v_message = message_text;
      perform app_private.record_organization_failure('prune_audit_events', v_settings.organization_id, v_state, v_message);
    end;
  end loop;
  perform set_config('tenantbase.allow_prune', '', true);
  return v_count;
end;
$$;
comment on function app_private.prune_audit_events() is
  'Deletes audit entries older than each organization''s auditLogRetentionDays. Returns how many.';

create or replace trigger _050_append_only before update or delete on app_public.audit_events
  for each row when (current_setting('tenantbase.allow_prune', true) is distinct from 'on')
  execute function app_private.tg_append_only();

create or replace trigger _900_audit after insert or update or delete on app_public.organization_members
  for each row execute function app_private.tg_organization_members_audit();
