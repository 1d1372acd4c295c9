-- Plan limits: seats (members plus pending invitations), projects and API keys, enforced under the counter-row lock.

-- Pending, unexpired invitations hold a seat. While an invitation is being accepted
-- (tenantbase.seat_check = 'members_only', set by accept_invitation for one insert) they do not:
-- the invitation converts its own reservation, and other people's reservations must not stop it
-- when the plan has room for one more member (e.g. after a downgrade, first come first served).
create or replace function app_private.organization_reserved_seats(organization_id uuid) returns int
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select case
    when current_setting('tenantbase.seat_check', true) = 'members_only' then 0
    else (
      select count(*)::int from app_public.invitations i
      where i.organization_id = organization_reserved_seats.organization_id
        and i.status = 'pending'
        and i.expires_at > now()
    )
  end;
$$;
comment on function app_private.organization_reserved_seats(uuid) is
  'Seats taken by something other than members (e.g. pending invitations); counted by assert_seat_available.';

-- Locks the organization's counter row until the end of the transaction and raises
-- SEAT_LIMIT_REACHED unless `extra` more seats fit in its plan. Call it before adding members
-- or invitations; concurrent callers queue on the lock and see each other's counts.
create or replace function app_private.assert_seat_available(organization_id uuid, extra int default 1) returns void
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_counter app_public.usage_counters;
  v_plan app_public.plans;
begin
  select * into v_counter from app_public.usage_counters c
  where c.organization_id = assert_seat_available.organization_id
  for update;
  if not found then
    perform app_hidden.raise_error('NOT_FOUND', 'No such organization.');
  end if;
  v_plan := app_private.organization_plan(assert_seat_available.organization_id);
  if v_plan.max_seats is not null
     and v_counter.seat_count + app_private.organization_reserved_seats(assert_seat_available.organization_id)
         + coalesce(extra, 1) > v_plan.max_seats then
    perform app_hidden.raise_error('SEAT_LIMIT_REACHED',
      format('The %s plan allows %s members.', v_plan.name, v_plan.max_seats));
  end if;
end;
$$;
comment on function app_private.assert_seat_available(uuid, int) is
  'Locks the counter row and raises SEAT_LIMIT_REACHED unless extra more seats fit the plan.';

-- The same for projects.
create or replace function app_private.assert_project_available(organization_id uuid, extra int default 1) returns void
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_counter app_public.usage_counters;
  v_plan app_public.plans;
begin
  select * into v_counter from app_public.usage_counters c
  where c.organization_id = assert_project_available.organization_id
  for update;
  if not found then
    perform app_hidden.raise_error('NOT_FOUND', 'No such organization.');
  end if;
  v_plan := app_private.organization_plan(assert_project_available.organization_id);
  if v_plan.max_projects is not null and v_counter.project_count + coalesce(extra, 1) > v_plan.max_projects then
    perform app_hidden.raise_error('PROJECT_LIMIT_REACHED',
      format('The %s plan allows %s projects.', v_plan.name, v_plan.max_projects));
  end if;
end;
$$;
comment on function app_private.assert_project_available(uuid, int) is
  'Locks the counter row and raises PROJECT_LIMIT_REACHED unless extra more projects fit the plan.';

-- The same for live API keys (not revoked, not expired): API_KEY_LIMIT_REACHED. A key that
-- expires frees its place by itself; revoking one frees it at once. Creations are also counted
-- per clock hour (max_api_keys_created_per_hour, QUOTA_EXCEEDED, 100-plans/quotas.sql), so
-- create/revoke cycles cannot pile up rows and audit entries.
create or replace function app_private.assert_api_key_available(organization_id uuid) returns void
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_plan app_public.plans;
  v_live int;
begin
  perform 1 from app_public.usage_counters c
  where c.organization_id = assert_api_key_available.organization_id
  for update;
  if not found then
    perform app_hidden.raise_error('NOT_FOUND', 'No such organization.');
  end if;
  v_plan := app_private.organization_plan(assert_api_key_available.organization_id);
  if v_plan.max_api_keys is not null then
    select count(*) into v_live from (
      select 1 from app_public.api_keys k
      where k.organization_id = assert_api_key_available.organization_id
        and k.revoked_at is null
        and (k.expires_at is null or k.expires_at > now())
      limit v_plan.max_api_keys
    ) s;
    if v_live >= v_plan.max_api_keys then
      perform app_hidden.raise_error_with('API_KEY_LIMIT_REACHED',
        format('The %s plan allows %s live API keys; revoke one first.', v_plan.name, v_plan.max_api_keys),
        jsonb_build_object('limit', v_plan.max_api_keys));
    end if;
  end if;
  perform app_private.consume_hourly_quota(assert_api_key_available.organization_id, 'apiKeysCreatedPerHour',
    v_plan.max_api_keys_created_per_hour, 'API keys created');
end;
$$;
comment on function app_private.assert_api_key_available(uuid) is
  'Locks the counter row and raises API_KEY_LIMIT_REACHED when the organization has as many live API keys as its plan allows.';

-- Seats. A member row counts while it is not soft-deleted; the column is read through to_jsonb so
-- this keeps working whether or not organization_members has a deleted_at column.
create or replace function app_private.tg_organization_members_seat_count() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_old_counts boolean := tg_op in ('UPDATE', 'DELETE') and (to_jsonb(old) ->> 'deleted_at') is null;
  v_new_counts boolean := tg_op in ('UPDATE', 'INSERT') and (to_jsonb(new) ->> 'deleted_at') is null;
begin
  if tg_op = 'UPDATE' and new.organization_id is distinct from old.organization_id then
    raise exception 'a membership cannot move to another organization';
  end if;
  if v_new_counts and not v_old_counts then
    perform app_private.assert_seat_available(new.organization_id, 1);
    update app_public.usage_counters c set seat_count = c.seat_count + 1
    where c.organization_id = new.organization_id;
  elsif v_old_counts and not v_new_counts then
    -- on a cascade from deleting the organization the counter row may already be gone
    update app_public.usage_counters c set seat_count = c.seat_count - 1
    where c.organization_id = old.organization_id;
  end if;
  return null;
end;
$$;

create or replace trigger _200_seat_count after insert or update or delete on app_public.organization_members
  for each row execute function app_private.tg_organization_members_seat_count();
