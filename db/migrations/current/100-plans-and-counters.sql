-- Plans, projects, usage counters and the limits they enforce.
--
-- The rule: a limit is checked against the counter row of the organization while that row is
-- locked (UPDATE / SELECT … FOR UPDATE), in the same transaction as the change it counts, so two
-- concurrent requests can never both pass the last free slot. Counters are derived state kept
-- exact by triggers; a test recomputes them from scratch and compares.

--------------------------------------------------------------------------------------------------
-- Plans
--------------------------------------------------------------------------------------------------

create table app_public.plans (
  id text primary key,
  name text not null,
  max_seats int,
  max_projects int,
  monthly_credits bigint not null default 0,
  stripe_price_id text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  constraint plans_id_check check (id ~ '^[a-z0-9][a-z0-9_-]{0,31}$'),
  constraint plans_name_check check (length(name) between 1 and 100),
  constraint plans_max_seats_check check (max_seats is null or max_seats >= 1),
  constraint plans_max_projects_check check (max_projects is null or max_projects >= 0),
  constraint plans_monthly_credits_check check (monthly_credits >= 0)
);
comment on table app_public.plans is
  E'@behavior -insert -update -delete\nWhat an organization may use. A null limit means unlimited.';
comment on column app_public.plans.max_seats is 'Members an organization on this plan may have; null = unlimited.';
comment on column app_public.plans.max_projects is 'Live (not deleted) projects allowed; null = unlimited.';
comment on column app_public.plans.monthly_credits is 'Credits granted at the start of every usage period.';
comment on column app_public.plans.stripe_price_id is 'The Stripe price that buys this plan, if any.';
create trigger _100_audit_columns before insert or update on app_public.plans
  for each row execute function app_private.tg_audit_columns();

insert into app_public.plans (id, name, max_seats, max_projects, monthly_credits) values
  ('free', 'Free', 3, 3, 100),
  ('pro', 'Pro', 10, 50, 5000),
  ('enterprise', 'Enterprise', null, null, 50000);

alter table app_public.organizations
  add constraint organizations_plan_id_fkey foreign key (plan_id) references app_public.plans (id);
create index organizations_plan_id_idx on app_public.organizations (plan_id);

-- The one place that says which plan governs an organization. Every limit check reads it; the
-- billing code replaces it (create or replace) to follow subscriptions. SECURITY DEFINER: limit
-- checks run inside triggers fired by app_user, who may not see every organization column.
create function app_private.organization_plan(organization_id uuid) returns app_public.plans
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select p.*
  from app_public.organizations o
  join app_public.plans p on p.id = o.plan_id
  where o.id = organization_plan.organization_id;
$$;
comment on function app_private.organization_plan(uuid) is
  'The plan whose limits apply to the organization now. Replace this function to change where that comes from.';

--------------------------------------------------------------------------------------------------
-- Usage counters: one row per organization
--------------------------------------------------------------------------------------------------

-- The usage period containing a moment: calendar months in UTC.
create function app_hidden.usage_period_start(at timestamptz) returns timestamptz
  language sql immutable parallel safe
as $$
  select date_trunc('month', at at time zone 'UTC') at time zone 'UTC';
$$;

create table app_public.usage_counters (
  organization_id uuid primary key references app_public.organizations on delete cascade,
  seat_count int not null default 0,
  project_count int not null default 0,
  generations bigint not null default 0,
  credits_spent bigint not null default 0,
  api_calls bigint not null default 0,
  period_start timestamptz not null default app_hidden.usage_period_start(now()),
  period_end timestamptz not null default app_hidden.usage_period_start(now()) + interval '1 month',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  constraint usage_counters_nonnegative check (
    seat_count >= 0 and project_count >= 0 and generations >= 0 and credits_spent >= 0 and api_calls >= 0
  ),
  constraint usage_counters_period_check check (period_end > period_start)
);
comment on table app_public.usage_counters is
  E'@behavior -insert -update -delete\nAn organization''s usage: seats and projects now, generations, credits and API calls this period. Kept exact by triggers.';
comment on column app_public.usage_counters.seat_count is 'Members of the organization.';
comment on column app_public.usage_counters.project_count is 'Projects not deleted.';
comment on column app_public.usage_counters.generations is 'Generations started this period.';
comment on column app_public.usage_counters.credits_spent is 'Credits captured this period.';
comment on column app_public.usage_counters.api_calls is 'API-key requests this period.';
create index usage_counters_period_end_idx on app_public.usage_counters (period_end);
create trigger _100_audit_columns before insert or update on app_public.usage_counters
  for each row execute function app_private.tg_audit_columns();

-- Finished periods, kept for billing and history (written by the period rollover job).
create table app_public.usage_periods (
  organization_id uuid not null references app_public.organizations on delete cascade,
  period_start timestamptz not null,
  period_end timestamptz not null,
  generations bigint not null,
  credits_spent bigint not null,
  api_calls bigint not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, period_start)
);
comment on table app_public.usage_periods is
  E'@behavior -insert -update -delete\nUsage of an organization in a finished period.';
create trigger _100_audit_columns before insert or update on app_public.usage_periods
  for each row execute function app_private.tg_audit_columns();

-- Every organization gets its counter row in the transaction that creates it, before its first
-- member is inserted (create_organization inserts the owner right after).
create function app_private.tg_organizations_usage_counter() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  insert into app_public.usage_counters (organization_id) values (new.id)
  on conflict (organization_id) do nothing;
  return null;
end;
$$;
create trigger _200_usage_counter after insert on app_public.organizations
  for each row execute function app_private.tg_organizations_usage_counter();

-- Organizations that existed before this migration.
insert into app_public.usage_counters (organization_id, seat_count)
select o.id, (select count(*) from app_public.organization_members m where m.organization_id = o.id)
from app_public.organizations o
on conflict (organization_id) do nothing;

-- Seats held by something other than members (pending invitations). The team code replaces
-- this function; the default holds none.
create function app_private.organization_reserved_seats(organization_id uuid) returns int
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select 0;
$$;
comment on function app_private.organization_reserved_seats(uuid) is
  'Seats taken by something other than members (e.g. pending invitations); counted by assert_seat_available.';

-- Locks the organization's counter row until the end of the transaction and raises
-- SEAT_LIMIT_REACHED unless `extra` more seats fit in its plan. Call it before adding members
-- or invitations; concurrent callers queue on the lock and see each other's counts.
create function app_private.assert_seat_available(organization_id uuid, extra int default 1) returns void
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
create function app_private.assert_project_available(organization_id uuid, extra int default 1) returns void
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

-- One API-key request, counted for the current period.
create function app_private.count_api_call(organization_id uuid) returns void
  language sql volatile security definer
  set search_path = pg_catalog, public
as $$
  update app_public.usage_counters c set api_calls = c.api_calls + 1
  where c.organization_id = count_api_call.organization_id;
$$;

-- Seats. A member row counts while it is not soft-deleted; the column is read through to_jsonb so
-- this keeps working whether or not organization_members has a deleted_at column.
create function app_private.tg_organization_members_seat_count() returns trigger
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
create trigger _200_seat_count after insert or update or delete on app_public.organization_members
  for each row execute function app_private.tg_organization_members_seat_count();

--------------------------------------------------------------------------------------------------
-- Projects
--------------------------------------------------------------------------------------------------

create table app_public.projects (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  name text not null,
  description text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  deleted_at timestamptz,
  primary key (organization_id, id),
  constraint projects_name_check check (length(name) between 1 and 100 and name = btrim(name)),
  constraint projects_description_check check (length(description) <= 2000)
);
comment on table app_public.projects is 'A container for an organization''s work (generations belong to one).';
comment on column app_public.projects.deleted_at is 'Set when soft-deleted; admins can list and restore.';
-- Lookups by id alone (mutations take the id); not unique on its own: the key leads with the tenant.
create index projects_id_idx on app_public.projects (id);
create index projects_organization_created_idx on app_public.projects (organization_id, created_at desc);
create index projects_created_by_idx on app_public.projects (created_by);
create trigger _100_audit_columns before insert or update on app_public.projects
  for each row execute function app_private.tg_audit_columns();

create function app_private.tg_projects_validate() returns trigger
  language plpgsql volatile
  set search_path = pg_catalog, public
as $$
begin
  -- A signed-in caller naming another tenant's (or an unknown) organization gets a clear
  -- NOT_FOUND here rather than the row-level-security violation that would follow.
  if tg_op = 'INSERT' and app_public.current_user_id() is not null
     and not new.organization_id = any (app_public.current_user_organization_ids()) then
    perform app_hidden.raise_error('NOT_FOUND', 'No such organization.');
  end if;
  if new.name is null or length(btrim(new.name)) not between 1 and 100 then
    perform app_hidden.raise_error('INVALID_NAME', 'Project name must be 1 to 100 characters.');
  end if;
  new.name := btrim(new.name);
  if length(new.description) > 2000 then
    perform app_hidden.raise_error('INVALID_DESCRIPTION', 'Project description must be at most 2000 characters.');
  end if;
  if tg_op = 'UPDATE' and new.organization_id is distinct from old.organization_id then
    perform app_hidden.raise_error('INVALID_ORGANIZATION', 'A project cannot move to another organization.');
  end if;
  return new;
end;
$$;
create trigger _010_validate before insert or update on app_public.projects
  for each row execute function app_private.tg_projects_validate();

create function app_private.tg_projects_project_count() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_old_counts boolean := tg_op in ('UPDATE', 'DELETE') and old.deleted_at is null;
  v_new_counts boolean := tg_op in ('UPDATE', 'INSERT') and new.deleted_at is null;
begin
  if v_new_counts and not v_old_counts then
    perform app_private.assert_project_available(new.organization_id, 1);
    update app_public.usage_counters c set project_count = c.project_count + 1
    where c.organization_id = new.organization_id;
  elsif v_old_counts and not v_new_counts then
    update app_public.usage_counters c set project_count = c.project_count - 1
    where c.organization_id = old.organization_id;
  end if;
  return null;
end;
$$;
create trigger _200_project_count after insert or update or delete on app_public.projects
  for each row execute function app_private.tg_projects_project_count();

-- Soft delete and restore (admins and owners). SECURITY DEFINER: the caller has no privilege on
-- deleted_at; the role check is here.
create function app_public.delete_project(id uuid) returns app_public.projects
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_project app_public.projects;
begin
  select * into v_project from app_public.projects p
  where p.id = delete_project.id
    and p.organization_id = any (app_public.current_user_organization_ids())
  for update;
  if not found then
    perform app_hidden.raise_error('NOT_FOUND', 'No such project.');
  end if;
  if not v_project.organization_id = any (app_public.current_user_organization_ids('admin')) then
    perform app_hidden.raise_error('FORBIDDEN', 'Only admins and owners can delete projects.');
  end if;
  if v_project.deleted_at is not null then
    return v_project;
  end if;
  update app_public.projects p set deleted_at = now()
  where p.organization_id = v_project.organization_id and p.id = v_project.id
  returning * into v_project;
  perform app_private.record_audit_event(v_project.organization_id, 'project.deleted', 'project', v_project.id, '{}');
  return v_project;
end;
$$;
comment on function app_public.delete_project(uuid) is
  E'@resultFieldName project\nSoft-deletes a project (admins and owners); it stops counting against the plan.';

create function app_public.restore_project(id uuid) returns app_public.projects
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_project app_public.projects;
begin
  select * into v_project from app_public.projects p
  where p.id = restore_project.id
    and p.organization_id = any (app_public.current_user_organization_ids('admin'))
  for update;
  if not found then
    perform app_hidden.raise_error('NOT_FOUND', 'No such project.');
  end if;
  if v_project.deleted_at is null then
    return v_project;
  end if;
  update app_public.projects p set deleted_at = null
  where p.organization_id = v_project.organization_id and p.id = v_project.id
  returning * into v_project;
  perform app_private.record_audit_event(v_project.organization_id, 'project.restored', 'project', v_project.id, '{}');
  return v_project;
end;
$$;
comment on function app_public.restore_project(uuid) is
  E'@resultFieldName project\nRestores a soft-deleted project (admins and owners), if the plan has room (PROJECT_LIMIT_REACHED).';

-- app_private.recomputed_usage_counters(), the check of these counters, is in 140-jobs.sql (it
-- also recomputes the generation and credit counters, whose tables come later).
