--! Previous: sha1:11b8ed41c2b44fd3f05bf78a1f7cc3ca7120c30a
--! Hash: sha1:f0efe16e721d76ff1d4c9842ef6aeb4ccd9aee32
--! Message: plans counters credits generations analytics

--! split: 100-plans-and-counters.sql
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

--! split: 110-credits.sql
-- The credit ledger: prepaid credits granted (purchases, monthly allowances, manual), reserved
-- before paid work, then captured (spent) or released.
--
-- Truth and derived state:
--   credit_ledger     append-only; every change of an account is one row here, written by
--                     app_private.ledger_append in the same statement that changes the account.
--   credit_accounts   available + reserved per organization (derived, kept in step).
--   credit_grants     where available credits came from and when they expire; spending takes
--                     from the soonest-expiring grant first. sum(remaining) = available.
--   credit_reservations + app_private.credit_reservation_allocations: which grants a reservation
--                     holds credits from, so capture consumes and release returns the right ones.
-- Concurrency: every operation on an organization's credits first locks its credit_accounts row
-- (SELECT … FOR UPDATE), then reservations, then grants, always in that order; so operations on
-- one organization are serialized and never deadlock, and other organizations are unaffected.
-- Idempotency: a key is unique per organization across the whole ledger; repeating an operation
-- with its key returns the first result and writes nothing.

create type app_public.credit_entry_kind as enum ('grant', 'reserve', 'capture', 'release', 'expire', 'adjust');
create type app_public.credit_reservation_status as enum ('open', 'captured', 'released', 'expired');

-- Amounts clients send are checked here (the API takes them as arbitrary-precision numbers so
-- that 1.5 or 10^20 reach this check and get INVALID_AMOUNT rather than a type error).
create function app_hidden.assert_valid_amount(amount numeric) returns bigint
  language plpgsql immutable
as $$
begin
  if amount is null or amount <= 0 or amount <> trunc(amount) or amount > 1000000000000 then
    perform app_hidden.raise_error('INVALID_AMOUNT', 'Amount must be a whole number of credits from 1 to 10^12.');
  end if;
  return amount::bigint;
end;
$$;

create function app_hidden.assert_valid_idempotency_key(key text, required boolean) returns void
  language plpgsql immutable
as $$
begin
  if key is null then
    if required then
      perform app_hidden.raise_error('INVALID_IDEMPOTENCY_KEY', 'An idempotency key is required.');
    end if;
  elsif length(key) not between 1 and 200 then
    perform app_hidden.raise_error('INVALID_IDEMPOTENCY_KEY', 'An idempotency key must be 1 to 200 characters.');
  end if;
end;
$$;

--------------------------------------------------------------------------------------------------
-- Tables
--------------------------------------------------------------------------------------------------

create table app_public.credit_accounts (
  organization_id uuid primary key references app_public.organizations on delete cascade,
  available bigint not null default 0,
  reserved bigint not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  constraint credit_accounts_available_check check (available >= 0),
  constraint credit_accounts_reserved_check check (reserved >= 0)
);
comment on table app_public.credit_accounts is
  E'@behavior -insert -update -delete\nAn organization''s credits: available to spend, and reserved by work in progress. Derived from the ledger.';
create trigger _100_audit_columns before insert or update on app_public.credit_accounts
  for each row execute function app_private.tg_audit_columns();

create table app_public.credit_reservations (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  amount bigint not null,
  status app_public.credit_reservation_status not null default 'open',
  captured_amount bigint,
  idempotency_key text not null,
  expires_at timestamptz not null,
  settled_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id),
  constraint credit_reservations_idempotency_key unique (organization_id, idempotency_key),
  constraint credit_reservations_amount_check check (amount > 0),
  constraint credit_reservations_captured_check check (
    (status = 'captured' and captured_amount between 1 and amount)
    or (status <> 'captured' and captured_amount is null)),
  constraint credit_reservations_settled_check check ((status = 'open') = (settled_at is null))
);
comment on table app_public.credit_reservations is
  E'@behavior -insert -update -delete\nCredits held for work in progress until captured, released, or expired at expires_at.';
comment on column app_public.credit_reservations.captured_amount is 'Credits spent, once captured (the rest was released).';
create index credit_reservations_id_idx on app_public.credit_reservations (id);
create index credit_reservations_organization_created_idx on app_public.credit_reservations (organization_id, created_at desc);
create index credit_reservations_open_expires_idx on app_public.credit_reservations (expires_at) where status = 'open';
create trigger _100_audit_columns before insert or update on app_public.credit_reservations
  for each row execute function app_private.tg_audit_columns();

create table app_public.credit_ledger (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  seq bigint not null generated always as identity,
  kind app_public.credit_entry_kind not null,
  available_delta bigint not null,
  reserved_delta bigint not null,
  amount bigint not null generated always as (available_delta + reserved_delta) stored,
  available_after bigint not null,
  reserved_after bigint not null,
  balance_after bigint not null generated always as (available_after + reserved_after) stored,
  source text,
  reservation_id uuid,
  generation_id uuid,
  grant_id uuid,
  stripe_event_id text,
  idempotency_key text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id),
  constraint credit_ledger_idempotency_key unique (organization_id, idempotency_key),
  constraint credit_ledger_reservation_fkey foreign key (organization_id, reservation_id)
    references app_public.credit_reservations (organization_id, id),
  constraint credit_ledger_source_check check (source ~ '^[a-z][a-z0-9_]{0,31}$'),
  constraint credit_ledger_nonzero check (available_delta <> 0 or reserved_delta <> 0)
);
comment on table app_public.credit_ledger is
  E'@name credit_ledger_entry\n@behavior -insert -update -delete\nEvery change to an organization''s credits, in order. Append-only: the truth that balances are derived from.';
comment on column app_public.credit_ledger.amount is 'Change of the balance (available + reserved): + for grants, - for captures and expiry, 0 for reserve and release.';
comment on column app_public.credit_ledger.available_delta is 'Change of the available credits.';
comment on column app_public.credit_ledger.reserved_delta is 'Change of the reserved credits.';
comment on column app_public.credit_ledger.balance_after is 'available + reserved after this entry.';
comment on column app_public.credit_ledger.source is 'Where granted credits came from (purchase, monthly_allowance, manual, …) or why they moved.';
comment on column app_public.credit_ledger.seq is 'Order of the entries (several entries of one transaction share created_at).';
create index credit_ledger_organization_seq_idx on app_public.credit_ledger (organization_id, seq);
create index credit_ledger_reservation_idx on app_public.credit_ledger (organization_id, reservation_id) where reservation_id is not null;
create index credit_ledger_generation_idx on app_public.credit_ledger (organization_id, generation_id) where generation_id is not null;
create trigger _100_audit_columns before insert on app_public.credit_ledger
  for each row execute function app_private.tg_audit_columns();

-- Append-only for every role, the owner included. The one exception is the cascade that erases
-- a whole organization (its rows go with it; nothing is left to disagree with).
create function app_private.tg_credit_ledger_append_only() returns trigger
  language plpgsql volatile
  set search_path = pg_catalog, public
as $$
begin
  if tg_op = 'DELETE' and not exists (select 1 from app_public.organizations o where o.id = old.organization_id) then
    return old;
  end if;
  raise exception 'app_public.credit_ledger is append-only' using errcode = 'insufficient_privilege';
end;
$$;
create trigger _050_append_only before update or delete on app_public.credit_ledger
  for each row execute function app_private.tg_credit_ledger_append_only();
create trigger _050_append_only_truncate before truncate on app_public.credit_ledger
  for each statement execute function app_private.tg_credit_ledger_append_only();

create table app_public.credit_grants (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  source text not null,
  amount bigint not null,
  remaining bigint not null,
  expires_at timestamptz,
  expired_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id),
  constraint credit_grants_amount_check check (amount > 0),
  constraint credit_grants_remaining_check check (remaining >= 0 and remaining <= amount)
);
comment on table app_public.credit_grants is
  E'@behavior -insert -update -delete\nCredits granted to an organization; remaining is what is still available of it (reserved credits are held apart). Spent soonest-expiring first.';
create index credit_grants_spend_order_idx on app_public.credit_grants (organization_id, expires_at nulls last, id)
  where remaining > 0;
create index credit_grants_due_idx on app_public.credit_grants (expires_at) where remaining > 0 and expires_at is not null;
create trigger _100_audit_columns before insert or update on app_public.credit_grants
  for each row execute function app_private.tg_audit_columns();

-- Which grants an open reservation holds credits from. Deleted when the reservation settles.
create table app_private.credit_reservation_allocations (
  organization_id uuid not null,
  reservation_id uuid not null,
  grant_id uuid not null,
  amount bigint not null check (amount > 0),
  primary key (organization_id, reservation_id, grant_id),
  foreign key (organization_id, reservation_id) references app_public.credit_reservations on delete cascade,
  foreign key (organization_id, grant_id) references app_public.credit_grants on delete cascade
);
create index credit_reservation_allocations_grant_idx on app_private.credit_reservation_allocations (organization_id, grant_id);

--------------------------------------------------------------------------------------------------
-- The one writer of the ledger
--------------------------------------------------------------------------------------------------

-- Moves an account and records the move, in one place. The account row must already be locked by
-- the caller (lock_credit_account). The check constraints refuse a negative result.
create function app_private.ledger_append(
  organization_id uuid,
  kind app_public.credit_entry_kind,
  available_delta bigint,
  reserved_delta bigint,
  source text default null,
  reservation_id uuid default null,
  generation_id uuid default null,
  grant_id uuid default null,
  idempotency_key text default null,
  stripe_event_id text default null
) returns app_public.credit_ledger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_account app_public.credit_accounts;
  v_entry app_public.credit_ledger;
begin
  update app_public.credit_accounts a
  set available = a.available + ledger_append.available_delta,
      reserved = a.reserved + ledger_append.reserved_delta
  where a.organization_id = ledger_append.organization_id
  returning * into v_account;
  if not found then
    raise exception 'no credit account for organization %', ledger_append.organization_id;
  end if;
  insert into app_public.credit_ledger (
    organization_id, kind, available_delta, reserved_delta, available_after, reserved_after,
    source, reservation_id, generation_id, grant_id, idempotency_key, stripe_event_id
  ) values (
    ledger_append.organization_id, ledger_append.kind, ledger_append.available_delta, ledger_append.reserved_delta,
    v_account.available, v_account.reserved, ledger_append.source, ledger_append.reservation_id,
    ledger_append.generation_id, ledger_append.grant_id, ledger_append.idempotency_key, ledger_append.stripe_event_id
  ) returning * into v_entry;
  return v_entry;
end;
$$;

-- Locks the organization's account for the rest of the transaction (the first step of every
-- credit operation) and returns it.
create function app_private.lock_credit_account(organization_id uuid) returns app_public.credit_accounts
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_account app_public.credit_accounts;
begin
  select * into v_account from app_public.credit_accounts a
  where a.organization_id = lock_credit_account.organization_id
  for update;
  if not found then
    perform app_hidden.raise_error('NOT_FOUND', 'No such organization.');
  end if;
  return v_account;
end;
$$;

-- The ledger entry already written under this key, if any (account locked by the caller).
create function app_private.ledger_entry_by_key(organization_id uuid, idempotency_key text) returns app_public.credit_ledger
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select * from app_public.credit_ledger l
  where l.organization_id = ledger_entry_by_key.organization_id
    and l.idempotency_key = ledger_entry_by_key.idempotency_key;
$$;

--------------------------------------------------------------------------------------------------
-- Grants and their expiry
--------------------------------------------------------------------------------------------------

-- Removes what is left of every grant of the organization that has expired, with one 'expire'
-- entry each. The account must be locked by the caller. Safe to call any number of times.
create function app_private.expire_due_grants_locked(organization_id uuid) returns int
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_grant app_public.credit_grants;
  v_count int := 0;
begin
  for v_grant in
    select * from app_public.credit_grants g
    where g.organization_id = expire_due_grants_locked.organization_id
      and g.remaining > 0 and g.expires_at <= now()
    order by g.expires_at, g.id
    for update
  loop
    perform app_private.ledger_append(v_grant.organization_id, 'expire', -v_grant.remaining, 0,
      source => 'grant_expired', grant_id => v_grant.id);
    update app_public.credit_grants g set remaining = 0, expired_at = now()
    where g.organization_id = v_grant.organization_id and g.id = v_grant.id;
    v_count := v_count + 1;
  end loop;
  return v_count;
end;
$$;

-- What the grant-expiry job calls, one organization per transaction.
create function app_private.expire_grants(organization_id uuid) returns int
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  perform app_private.lock_credit_account(expire_grants.organization_id);
  return app_private.expire_due_grants_locked(expire_grants.organization_id);
end;
$$;

-- The implementation of grant_credits, with the Stripe event it came from (if any).
create function app_private.grant_credits_from(
  organization_id uuid,
  amount bigint,
  source text,
  expires_at timestamptz,
  idempotency_key text,
  stripe_event_id text
) returns app_public.credit_ledger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_entry app_public.credit_ledger;
  v_grant_id uuid;
begin
  if amount is null or amount <= 0 or amount > 1000000000000 then
    perform app_hidden.raise_error('INVALID_AMOUNT', 'Amount must be a whole number of credits from 1 to 10^12.');
  end if;
  if source is null or source !~ '^[a-z][a-z0-9_]{0,31}$' then
    perform app_hidden.raise_error('INVALID_SOURCE', 'Source must be a short lowercase word such as purchase or manual.');
  end if;
  perform app_hidden.assert_valid_idempotency_key(idempotency_key, false);
  perform app_private.lock_credit_account(grant_credits_from.organization_id);
  if idempotency_key is not null then
    v_entry := app_private.ledger_entry_by_key(grant_credits_from.organization_id, idempotency_key);
    if v_entry.id is not null then
      if v_entry.kind <> 'grant' or v_entry.amount <> grant_credits_from.amount then
        perform app_hidden.raise_error('IDEMPOTENCY_KEY_REUSED', 'This idempotency key was used for a different operation.');
      end if;
      return v_entry;
    end if;
  end if;
  insert into app_public.credit_grants (organization_id, source, amount, remaining, expires_at)
  values (grant_credits_from.organization_id, source, amount, amount, expires_at)
  returning id into v_grant_id;
  v_entry := app_private.ledger_append(grant_credits_from.organization_id, 'grant', amount, 0,
    source => source, grant_id => v_grant_id, idempotency_key => idempotency_key,
    stripe_event_id => stripe_event_id);
  -- A grant that is already past its expiry is granted and expired at once: both stay on record.
  if expires_at is not null and expires_at <= now() then
    perform app_private.expire_due_grants_locked(grant_credits_from.organization_id);
  end if;
  return v_entry;
end;
$$;

-- For purchases and allowances (billing code and jobs; clients cannot call it). Idempotent on
-- the key: a repeat returns the first entry and writes nothing.
create function app_private.grant_credits(
  organization_id uuid,
  amount bigint,
  source text,
  expires_at timestamptz,
  idempotency_key text
) returns app_public.credit_ledger
  language sql volatile security definer
  set search_path = pg_catalog, public
as $$
  select app_private.grant_credits_from(organization_id, amount, source, expires_at, idempotency_key, null);
$$;
comment on function app_private.grant_credits(uuid, bigint, text, timestamptz, text) is
  'Adds credits (source: purchase, monthly_allowance, manual, …) expiring at expires_at (null: never). Returns the ledger entry; repeating with the same idempotency_key returns the first entry.';

-- Takes credits away (refund, chargeback, correction) from the soonest-expiring grants first.
create function app_private.debit_credits(
  organization_id uuid, amount bigint, source text, idempotency_key text
) returns app_public.credit_ledger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_account app_public.credit_accounts;
  v_entry app_public.credit_ledger;
  v_left bigint := amount;
  v_grant app_public.credit_grants;
  v_take bigint;
begin
  if amount is null or amount <= 0 or amount > 1000000000000 then
    perform app_hidden.raise_error('INVALID_AMOUNT', 'Amount must be a whole number of credits from 1 to 10^12.');
  end if;
  v_account := app_private.lock_credit_account(debit_credits.organization_id);
  if idempotency_key is not null then
    v_entry := app_private.ledger_entry_by_key(debit_credits.organization_id, idempotency_key);
    if v_entry.id is not null then
      if v_entry.kind <> 'adjust' or v_entry.amount <> -debit_credits.amount then
        perform app_hidden.raise_error('IDEMPOTENCY_KEY_REUSED', 'This idempotency key was used for a different operation.');
      end if;
      return v_entry;
    end if;
  end if;
  perform app_private.expire_due_grants_locked(debit_credits.organization_id);
  v_account := app_private.lock_credit_account(debit_credits.organization_id);
  if v_account.available < amount then
    perform app_hidden.raise_error('INSUFFICIENT_CREDITS', 'Not enough credits available.');
  end if;
  for v_grant in
    select * from app_public.credit_grants g
    where g.organization_id = debit_credits.organization_id and g.remaining > 0
    order by g.expires_at nulls last, g.id
    for update
  loop
    exit when v_left = 0;
    v_take := least(v_left, v_grant.remaining);
    update app_public.credit_grants g set remaining = g.remaining - v_take
    where g.organization_id = v_grant.organization_id and g.id = v_grant.id;
    v_left := v_left - v_take;
  end loop;
  return app_private.ledger_append(debit_credits.organization_id, 'adjust', -amount, 0,
    source => coalesce(source, 'manual'), idempotency_key => idempotency_key);
end;
$$;

--------------------------------------------------------------------------------------------------
-- Reservations: reserve -> capture | release | expire
--------------------------------------------------------------------------------------------------

create function app_private.reserve_credits(
  organization_id uuid,
  amount bigint,
  idempotency_key text,
  ttl_seconds int,
  generation_id uuid default null
) returns app_public.credit_reservations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_account app_public.credit_accounts;
  v_entry app_public.credit_ledger;
  v_reservation app_public.credit_reservations;
  v_grant app_public.credit_grants;
  v_left bigint := amount;
  v_take bigint;
begin
  v_account := app_private.lock_credit_account(reserve_credits.organization_id);
  v_entry := app_private.ledger_entry_by_key(reserve_credits.organization_id, idempotency_key);
  if v_entry.id is not null then
    select * into v_reservation from app_public.credit_reservations r
    where r.organization_id = reserve_credits.organization_id and r.id = v_entry.reservation_id;
    if v_entry.kind <> 'reserve' or v_reservation.amount <> reserve_credits.amount then
      perform app_hidden.raise_error('IDEMPOTENCY_KEY_REUSED', 'This idempotency key was used for a different operation.');
    end if;
    return v_reservation;
  end if;

  if app_private.expire_due_grants_locked(reserve_credits.organization_id) > 0 then
    v_account := app_private.lock_credit_account(reserve_credits.organization_id);
  end if;
  if v_account.available < amount then
    perform app_hidden.raise_error('INSUFFICIENT_CREDITS',
      format('Not enough credits: %s available, %s requested.', v_account.available, amount));
  end if;

  insert into app_public.credit_reservations (organization_id, amount, idempotency_key, expires_at)
  values (reserve_credits.organization_id, amount, idempotency_key, now() + make_interval(secs => ttl_seconds))
  returning * into v_reservation;

  -- Hold the credits from the soonest-expiring grants first.
  for v_grant in
    select * from app_public.credit_grants g
    where g.organization_id = reserve_credits.organization_id and g.remaining > 0
    order by g.expires_at nulls last, g.id
    for update
  loop
    exit when v_left = 0;
    v_take := least(v_left, v_grant.remaining);
    update app_public.credit_grants g set remaining = g.remaining - v_take
    where g.organization_id = v_grant.organization_id and g.id = v_grant.id;
    insert into app_private.credit_reservation_allocations (organization_id, reservation_id, grant_id, amount)
    values (reserve_credits.organization_id, v_reservation.id, v_grant.id, v_take);
    v_left := v_left - v_take;
  end loop;
  if v_left <> 0 then
    raise exception 'credit grants of organization % disagree with its account', reserve_credits.organization_id;
  end if;

  perform app_private.ledger_append(reserve_credits.organization_id, 'reserve', -amount, amount,
    reservation_id => v_reservation.id, generation_id => generation_id, idempotency_key => idempotency_key);

  -- Release it at expires_at if nobody settles it first (the job is a no-op otherwise).
  perform graphile_worker.add_job(
    'expire_credit_reservation',
    json_build_object('organizationId', v_reservation.organization_id, 'reservationId', v_reservation.id),
    run_at => v_reservation.expires_at,
    job_key => 'credits:expire-reservation:' || v_reservation.id,
    max_attempts => 10);
  return v_reservation;
end;
$$;

-- Settles an open reservation: `capture` credits are spent (taken from the soonest-expiring
-- grants it holds), the rest goes back to the grants it came from. status: captured, released
-- or expired. Returns the reservation, or a replay of the first result for a repeated key.
create function app_private.settle_reservation(
  organization_id uuid,
  reservation_id uuid,
  capture bigint,
  status app_public.credit_reservation_status,
  idempotency_key text,
  generation_id uuid default null
) returns app_public.credit_reservations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_entry app_public.credit_ledger;
  v_reservation app_public.credit_reservations;
  v_alloc app_private.credit_reservation_allocations;
  v_left bigint := coalesce(capture, 0);
  v_take bigint;
  v_release bigint;
begin
  perform app_private.lock_credit_account(settle_reservation.organization_id);
  if idempotency_key is not null then
    v_entry := app_private.ledger_entry_by_key(settle_reservation.organization_id, idempotency_key);
    if v_entry.id is not null then
      select * into v_reservation from app_public.credit_reservations r
      where r.organization_id = settle_reservation.organization_id and r.id = settle_reservation.reservation_id;
      if v_entry.reservation_id is distinct from settle_reservation.reservation_id
         or v_reservation.status is distinct from settle_reservation.status
         or (settle_reservation.status = 'captured' and v_reservation.captured_amount <> capture) then
        perform app_hidden.raise_error('IDEMPOTENCY_KEY_REUSED', 'This idempotency key was used for a different operation.');
      end if;
      return v_reservation;
    end if;
  end if;

  select * into v_reservation from app_public.credit_reservations r
  where r.organization_id = settle_reservation.organization_id and r.id = settle_reservation.reservation_id
  for update;
  if not found then
    perform app_hidden.raise_error('NOT_FOUND', 'No such reservation.');
  end if;
  if v_reservation.status = 'expired' and settle_reservation.status = 'captured' then
    perform app_hidden.raise_error('RESERVATION_EXPIRED', 'This reservation has expired; its credits were released.');
  end if;
  if v_reservation.status <> 'open' then
    perform app_hidden.raise_error('RESERVATION_ALREADY_SETTLED',
      format('This reservation was already %s.', v_reservation.status));
  end if;
  if settle_reservation.status = 'captured' then
    if v_reservation.expires_at <= now() then
      perform app_hidden.raise_error('RESERVATION_EXPIRED', 'This reservation has expired; its credits were released.');
    end if;
    if capture is null or capture <= 0 or capture > v_reservation.amount then
      perform app_hidden.raise_error('INVALID_AMOUNT',
        format('Capture between 1 and the %s credits reserved.', v_reservation.amount));
    end if;
  end if;

  -- Consume `capture` from the soonest-expiring grants held; give the rest back.
  for v_alloc in
    select a.* from app_private.credit_reservation_allocations a
    join app_public.credit_grants g on g.organization_id = a.organization_id and g.id = a.grant_id
    where a.organization_id = settle_reservation.organization_id and a.reservation_id = settle_reservation.reservation_id
    order by g.expires_at nulls last, g.id
    for update of a, g
  loop
    v_take := least(v_left, v_alloc.amount);
    v_left := v_left - v_take;
    v_release := v_alloc.amount - v_take;
    if v_release > 0 then
      update app_public.credit_grants g set remaining = g.remaining + v_release
      where g.organization_id = v_alloc.organization_id and g.id = v_alloc.grant_id;
    end if;
  end loop;
  delete from app_private.credit_reservation_allocations a
  where a.organization_id = settle_reservation.organization_id and a.reservation_id = settle_reservation.reservation_id;

  if coalesce(capture, 0) > 0 then
    perform app_private.ledger_append(settle_reservation.organization_id, 'capture', 0, -capture,
      reservation_id => v_reservation.id, generation_id => generation_id, idempotency_key => idempotency_key);
    update app_public.usage_counters c set credits_spent = c.credits_spent + capture
    where c.organization_id = settle_reservation.organization_id;
  end if;
  if v_reservation.amount - coalesce(capture, 0) > 0 then
    perform app_private.ledger_append(settle_reservation.organization_id, 'release',
      v_reservation.amount - coalesce(capture, 0), -(v_reservation.amount - coalesce(capture, 0)),
      source => case settle_reservation.status when 'expired' then 'reservation_expired' end,
      reservation_id => v_reservation.id, generation_id => generation_id,
      idempotency_key => case when coalesce(capture, 0) = 0 then idempotency_key end);
  end if;

  update app_public.credit_reservations r
  set status = settle_reservation.status,
      captured_amount = case when settle_reservation.status = 'captured' then capture end,
      settled_at = now()
  where r.organization_id = v_reservation.organization_id and r.id = v_reservation.id
  returning * into v_reservation;

  -- Credits returned to a grant that expired meanwhile expire now.
  perform app_private.expire_due_grants_locked(settle_reservation.organization_id);
  return v_reservation;
end;
$$;

-- What the expiry job calls: releases the reservation if it is still open and past expires_at.
-- Returns whether it did anything (safe to run twice).
create function app_private.expire_reservation(organization_id uuid, reservation_id uuid) returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_reservation app_public.credit_reservations;
begin
  perform app_private.lock_credit_account(expire_reservation.organization_id);
  select * into v_reservation from app_public.credit_reservations r
  where r.organization_id = expire_reservation.organization_id and r.id = expire_reservation.reservation_id
  for update;
  if not found or v_reservation.status <> 'open' or v_reservation.expires_at > now() then
    return false;
  end if;
  perform app_private.settle_reservation(expire_reservation.organization_id, expire_reservation.reservation_id,
    null, 'expired', null);
  return true;
end;
$$;

--------------------------------------------------------------------------------------------------
-- The API
--------------------------------------------------------------------------------------------------

-- The organization of a reservation the caller may act on, or NOT_FOUND (also for other tenants'
-- reservations: their existence is not disclosed).
create function app_private.member_reservation_organization(reservation_id uuid) returns uuid
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
declare
  v_organization_id uuid;
begin
  if reservation_id is null then
    perform app_hidden.raise_error('NOT_FOUND', 'No such reservation.');
  end if;
  select r.organization_id into v_organization_id
  from app_public.credit_reservations r
  where r.id = member_reservation_organization.reservation_id
    and r.organization_id = any (app_public.current_user_organization_ids());
  if v_organization_id is null then
    perform app_hidden.raise_error('NOT_FOUND', 'No such reservation.');
  end if;
  return v_organization_id;
end;
$$;

create function app_private.assert_member(organization_id uuid) returns void
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
begin
  -- A signed-in user, or an organization API key (jwt.claims.api_key_id, see 240-api-keys):
  -- current_user_organization_ids() answers for either.
  if app_public.current_user_id() is null
     and nullif(current_setting('jwt.claims.api_key_id', true), '') is null then
    perform app_hidden.raise_error('NOT_AUTHENTICATED', 'Sign in first.');
  end if;
  if organization_id is null or not organization_id = any (app_public.current_user_organization_ids()) then
    perform app_hidden.raise_error('NOT_FOUND', 'No such organization.');
  end if;
end;
$$;

create function app_public.reserve_credits(
  organization_id uuid,
  amount numeric,
  idempotency_key text,
  ttl_seconds int default 900
) returns app_public.credit_reservations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_amount bigint;
begin
  perform app_private.assert_member(organization_id);
  v_amount := app_hidden.assert_valid_amount(amount);
  perform app_hidden.assert_valid_idempotency_key(idempotency_key, true);
  if coalesce(ttl_seconds, 900) not between 1 and 86400 then
    perform app_hidden.raise_error('INVALID_TTL', 'ttlSeconds must be between 1 and 86400.');
  end if;
  return app_private.reserve_credits(organization_id, v_amount, idempotency_key, coalesce(ttl_seconds, 900));
end;
$$;
comment on function app_public.reserve_credits(uuid, numeric, text, int) is
  E'@resultFieldName creditReservation\nHolds credits for work about to start (INSUFFICIENT_CREDITS if there are not enough). Released automatically after ttlSeconds (default 900) unless captured or released first. Repeating a call with the same idempotencyKey returns the first reservation.';

create function app_public.capture_credits(
  reservation_id uuid,
  amount numeric default null,
  idempotency_key text default null
) returns app_public.credit_reservations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_organization_id uuid := app_private.member_reservation_organization(reservation_id);
  v_amount bigint;
  v_reserved bigint;
begin
  perform app_hidden.assert_valid_idempotency_key(idempotency_key, false);
  if amount is null then
    select r.amount into v_reserved from app_public.credit_reservations r
    where r.organization_id = v_organization_id and r.id = capture_credits.reservation_id;
    v_amount := v_reserved;
  else
    v_amount := app_hidden.assert_valid_amount(amount);
  end if;
  return app_private.settle_reservation(v_organization_id, reservation_id, v_amount, 'captured', idempotency_key);
end;
$$;
comment on function app_public.capture_credits(uuid, numeric, text) is
  E'@resultFieldName creditReservation\nSpends amount (default: all) of an open reservation and releases the rest. RESERVATION_ALREADY_SETTLED if it was captured or released already, RESERVATION_EXPIRED after its expiry. With an idempotencyKey, a repeat returns the first result.';

create function app_public.release_credits(
  reservation_id uuid,
  idempotency_key text default null
) returns app_public.credit_reservations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_organization_id uuid := app_private.member_reservation_organization(reservation_id);
begin
  perform app_hidden.assert_valid_idempotency_key(idempotency_key, false);
  return app_private.settle_reservation(v_organization_id, reservation_id, null, 'released', idempotency_key);
end;
$$;
comment on function app_public.release_credits(uuid, text) is
  E'@resultFieldName creditReservation\nGives all credits of an open reservation back. RESERVATION_ALREADY_SETTLED if it was settled already. With an idempotencyKey, a repeat returns the first result.';

--------------------------------------------------------------------------------------------------
-- Accounts for every organization, with the plan's monthly allowance
--------------------------------------------------------------------------------------------------

-- The allowance of the organization's current usage period, expiring at its end. Idempotent per
-- period (the key names it), so the period rollover job and billing code can both call it.
create function app_private.grant_monthly_allowance(organization_id uuid) returns app_public.credit_ledger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_counter app_public.usage_counters;
  v_plan app_public.plans := app_private.organization_plan(grant_monthly_allowance.organization_id);
  v_billed boolean;
begin
  -- A plan paid through Stripe gets its credits from each paid invoice (billing code), not here.
  -- That check lives with the billing code, which may not be installed: looked up by name.
  if to_regprocedure('app_private.organization_has_billed_plan(uuid)') is not null then
    execute 'select app_private.organization_has_billed_plan($1)' into v_billed using grant_monthly_allowance.organization_id;
    if v_billed then
      return null;
    end if;
  end if;
  select * into v_counter from app_public.usage_counters c where c.organization_id = grant_monthly_allowance.organization_id;
  if v_plan.monthly_credits is null or v_plan.monthly_credits = 0 or v_counter.organization_id is null then
    return null;
  end if;
  return app_private.grant_credits(grant_monthly_allowance.organization_id, v_plan.monthly_credits, 'monthly_allowance',
    v_counter.period_end,
    'allowance:' || to_char(v_counter.period_start at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'));
end;
$$;

create function app_private.tg_organizations_credit_account() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  insert into app_public.credit_accounts (organization_id) values (new.id)
  on conflict (organization_id) do nothing;
  perform app_private.grant_monthly_allowance(new.id);
  return null;
end;
$$;
-- after _200_usage_counter: the allowance expires with the usage period
create trigger _210_credit_account after insert on app_public.organizations
  for each row execute function app_private.tg_organizations_credit_account();

insert into app_public.credit_accounts (organization_id)
select o.id from app_public.organizations o
on conflict (organization_id) do nothing;

--------------------------------------------------------------------------------------------------
-- Checks (tests and the nightly job)
--------------------------------------------------------------------------------------------------

-- Every organization whose account disagrees with its ledger, its grants or its reservations.
-- Empty when all is well.
create function app_private.credit_ledger_discrepancies()
returns table (
  organization_id uuid,
  available bigint, reserved bigint,
  ledger_available numeric, ledger_reserved numeric,
  grants_remaining numeric, open_reserved numeric, allocated numeric
)
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select * from (
    select a.organization_id, a.available, a.reserved,
      coalesce((select sum(l.available_delta) from app_public.credit_ledger l where l.organization_id = a.organization_id), 0),
      coalesce((select sum(l.reserved_delta) from app_public.credit_ledger l where l.organization_id = a.organization_id), 0),
      coalesce((select sum(g.remaining) from app_public.credit_grants g where g.organization_id = a.organization_id), 0),
      coalesce((select sum(r.amount) from app_public.credit_reservations r where r.organization_id = a.organization_id and r.status = 'open'), 0),
      coalesce((select sum(x.amount) from app_private.credit_reservation_allocations x where x.organization_id = a.organization_id), 0)
    from app_public.credit_accounts a
  ) t (organization_id, available, reserved, ledger_available, ledger_reserved, grants_remaining, open_reserved, allocated)
  where t.available <> t.ledger_available or t.reserved <> t.ledger_reserved
     or t.available <> t.grants_remaining or t.reserved <> t.open_reserved or t.reserved <> t.allocated;
$$;
comment on function app_private.credit_ledger_discrepancies() is
  'Organizations whose credit account differs from the sum of their ledger, grants or open reservations.';

--! split: 120-generations.sql
-- Generations: one unit of paid work (an image, a video, a text, …). Starting one reserves its
-- estimated credits in the same transaction; completing it captures what it really cost (the
-- rest is released); failing it releases everything: a failed generation costs nothing.
--
-- What every provider has (project, kind, model, status, credits, times) is a real column, so
-- the frequent filters use btree indexes; what varies per provider lives in metadata (JSONB,
-- GIN-indexed for containment and key queries). The prompt, metadata->>'prompt', is searchable
-- by similarity through a pg_trgm index.

-- Trusted extension: the database owner may create it (no superuser).
create extension if not exists pg_trgm with schema public;

create type app_public.generation_kind as enum ('image', 'video', 'audio', 'text', 'embedding', 'other');
create type app_public.generation_status as enum ('pending', 'running', 'succeeded', 'failed');

create table app_public.generations (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  project_id uuid not null,
  kind app_public.generation_kind not null,
  model text not null,
  status app_public.generation_status not null default 'running',
  credits_estimated bigint not null,
  credits_charged bigint,
  reservation_id uuid not null,
  idempotency_key text not null,
  metadata jsonb not null default '{}',
  error text,
  completed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id),
  constraint generations_idempotency_key unique (organization_id, idempotency_key),
  constraint generations_project_fkey foreign key (organization_id, project_id)
    references app_public.projects (organization_id, id),
  constraint generations_reservation_fkey foreign key (organization_id, reservation_id)
    references app_public.credit_reservations (organization_id, id),
  constraint generations_model_check check (length(model) between 1 and 100),
  constraint generations_metadata_check check (jsonb_typeof(metadata) = 'object'),
  constraint generations_credits_check check (credits_estimated > 0 and (credits_charged is null or credits_charged between 0 and credits_estimated)),
  constraint generations_finished_check check ((status in ('succeeded', 'failed')) = (completed_at is not null)),
  constraint generations_error_check check (length(error) <= 2000)
);
comment on table app_public.generations is
  E'@behavior -insert -update -delete\nOne unit of paid work. Started with startGeneration, finished with completeGeneration or failGeneration.';
comment on column app_public.generations.project_id is E'@behavior +filterBy\nThe project it belongs to.';
comment on column app_public.generations.kind is E'@behavior +filterBy\nWhat is generated.';
comment on column app_public.generations.model is E'@behavior +filterBy\nThe provider''s model.';
comment on column app_public.generations.status is E'@behavior +filterBy\npending, running, succeeded or failed.';
comment on column app_public.generations.credits_estimated is 'Credits reserved when it started.';
comment on column app_public.generations.credits_charged is 'Credits spent, once succeeded (0 when failed).';
comment on column app_public.generations.metadata is E'@behavior -filterBy\nWhat varies per provider: prompt, size, seed, result URLs, …';

-- The hot list: "latest generations of my organization" (keyset pagination by created_at, id).
create index generations_organization_created_idx on app_public.generations (organization_id, created_at desc, id desc);
create index generations_project_created_idx on app_public.generations (organization_id, project_id, created_at desc);
create index generations_organization_status_idx on app_public.generations (organization_id, status, created_at desc);
create index generations_reservation_idx on app_public.generations (organization_id, reservation_id);
-- Mutations take the generation's id alone.
create index generations_id_idx on app_public.generations (id);
-- metadata @> '{"model": …}'. jsonb_path_ops indexes each path+value pair as one entry, so a
-- containment query looks up one selective entry (jsonb_ops would also look up the key "model",
-- which every row has); it does not serve `?` key-existence queries, which the API does not offer.
create index generations_metadata_idx on app_public.generations using gin (metadata jsonb_path_ops);
-- fuzzy prompt search: (metadata->>'prompt') %> 'orange kiten'
create index generations_prompt_trgm_idx on app_public.generations using gin ((metadata ->> 'prompt') gin_trgm_ops);
create trigger _100_audit_columns before insert or update on app_public.generations
  for each row execute function app_private.tg_audit_columns();

-- Counted in the usage period it starts in.
create function app_private.tg_generations_count() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  update app_public.usage_counters c set generations = c.generations + 1
  where c.organization_id = new.organization_id;
  return null;
end;
$$;
create trigger _200_count after insert on app_public.generations
  for each row execute function app_private.tg_generations_count();

-- When the reservation of a generation still running expires, the generation has failed.
create function app_private.tg_credit_reservations_expired() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  update app_public.generations g
  set status = 'failed', credits_charged = 0, completed_at = now(),
      error = 'Timed out: its credit reservation expired before it completed.'
  where g.organization_id = new.organization_id and g.reservation_id = new.id
    and g.status in ('pending', 'running');
  return null;
end;
$$;
create trigger _300_expire_generation after update of status on app_public.credit_reservations
  for each row when (new.status = 'expired' and old.status = 'open')
  execute function app_private.tg_credit_reservations_expired();

--------------------------------------------------------------------------------------------------
-- The API
--------------------------------------------------------------------------------------------------

create function app_public.start_generation(
  organization_id uuid,
  project_id uuid,
  kind app_public.generation_kind,
  model text,
  metadata jsonb,
  estimated_credits numeric,
  idempotency_key text
) returns app_public.generations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_amount bigint;
  v_generation app_public.generations;
  v_id uuid := app_hidden.uuid_generate_v7();
  v_reservation app_public.credit_reservations;
begin
  perform app_private.assert_member(organization_id);
  v_amount := app_hidden.assert_valid_amount(estimated_credits);
  perform app_hidden.assert_valid_idempotency_key(idempotency_key, true);
  if kind is null then
    perform app_hidden.raise_error('INVALID_KIND', 'A generation needs a kind.');
  end if;
  if model is null or length(btrim(model)) not between 1 and 100 then
    perform app_hidden.raise_error('INVALID_MODEL', 'Model must be 1 to 100 characters.');
  end if;
  if metadata is not null and (jsonb_typeof(metadata) <> 'object' or pg_column_size(metadata) > 65536) then
    perform app_hidden.raise_error('INVALID_METADATA', 'Metadata must be a JSON object of at most 64 kB.');
  end if;

  -- The account lock serializes this organization's credit operations, so the idempotency check
  -- below cannot race with itself.
  perform app_private.lock_credit_account(organization_id);
  select * into v_generation from app_public.generations g
  where g.organization_id = start_generation.organization_id and g.idempotency_key = start_generation.idempotency_key;
  if found then
    if v_generation.project_id is distinct from start_generation.project_id or v_generation.credits_estimated <> v_amount then
      perform app_hidden.raise_error('IDEMPOTENCY_KEY_REUSED', 'This idempotency key was used for a different generation.');
    end if;
    return v_generation;
  end if;
  if not exists (
    select 1 from app_public.projects p
    where p.organization_id = start_generation.organization_id and p.id = start_generation.project_id
      and p.deleted_at is null
  ) then
    perform app_hidden.raise_error('NOT_FOUND', 'No such project.');
  end if;

  v_reservation := app_private.reserve_credits(organization_id, v_amount, 'generation:' || idempotency_key, 3600, v_id);
  insert into app_public.generations (
    organization_id, id, project_id, kind, model, status, credits_estimated, reservation_id, idempotency_key, metadata
  ) values (
    organization_id, v_id, project_id, kind, btrim(model), 'running', v_amount, v_reservation.id, idempotency_key,
    coalesce(metadata, '{}')
  ) returning * into v_generation;
  return v_generation;
end;
$$;
comment on function app_public.start_generation(uuid, uuid, app_public.generation_kind, text, jsonb, numeric, text) is
  E'@resultFieldName generation\nStarts a generation and reserves its estimated credits in one step (INSUFFICIENT_CREDITS if there are not enough). The reservation expires after an hour; the generation then fails. Repeating a call with the same idempotencyKey returns the first generation.';

-- The caller's generation, locked, with its organization's credit account locked first (the
-- lock order of every credit operation).
create function app_private.lock_member_generation(generation_id uuid) returns app_public.generations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_organization_id uuid;
  v_generation app_public.generations;
begin
  select g.organization_id into v_organization_id from app_public.generations g
  where g.id = lock_member_generation.generation_id
    and g.organization_id = any (app_public.current_user_organization_ids());
  if v_organization_id is null then
    perform app_hidden.raise_error('NOT_FOUND', 'No such generation.');
  end if;
  perform app_private.lock_credit_account(v_organization_id);
  select * into v_generation from app_public.generations g
  where g.organization_id = v_organization_id and g.id = lock_member_generation.generation_id
  for update;
  return v_generation;
end;
$$;

create function app_public.complete_generation(
  generation_id uuid,
  credits numeric,
  result_metadata jsonb default null
) returns app_public.generations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_generation app_public.generations := app_private.lock_member_generation(generation_id);
  v_credits bigint;
begin
  if credits is null or credits < 0 or credits <> trunc(credits) or credits > 1000000000000 then
    perform app_hidden.raise_error('INVALID_AMOUNT', 'Credits must be a whole number from 0 to 10^12.');
  end if;
  v_credits := credits::bigint;
  if result_metadata is not null and (jsonb_typeof(result_metadata) <> 'object' or pg_column_size(result_metadata) > 65536) then
    perform app_hidden.raise_error('INVALID_METADATA', 'Metadata must be a JSON object of at most 64 kB.');
  end if;
  if v_generation.status = 'succeeded' and v_generation.credits_charged = v_credits then
    return v_generation; -- a repeat
  end if;
  if v_generation.status in ('succeeded', 'failed') then
    perform app_hidden.raise_error('GENERATION_ALREADY_FINISHED', format('This generation has already %s.', v_generation.status));
  end if;
  if v_credits > v_generation.credits_estimated then
    perform app_hidden.raise_error('INVALID_AMOUNT',
      format('Credits must not exceed the %s reserved when it started.', v_generation.credits_estimated));
  end if;
  if v_credits > 0 then
    perform app_private.settle_reservation(v_generation.organization_id, v_generation.reservation_id, v_credits,
      'captured', null, v_generation.id);
  else
    perform app_private.settle_reservation(v_generation.organization_id, v_generation.reservation_id, null,
      'released', null, v_generation.id);
  end if;
  update app_public.generations g
  set status = 'succeeded', credits_charged = v_credits, completed_at = now(),
      metadata = g.metadata || coalesce(result_metadata, '{}')
  where g.organization_id = v_generation.organization_id and g.id = v_generation.id
  returning * into v_generation;
  return v_generation;
end;
$$;
comment on function app_public.complete_generation(uuid, numeric, jsonb) is
  E'@resultFieldName generation\nMarks a generation succeeded and spends `credits` (at most the estimate; the rest is released). resultMetadata is merged into its metadata. RESERVATION_EXPIRED if it ran past its reservation.';

create function app_public.fail_generation(
  generation_id uuid,
  error text default null
) returns app_public.generations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_generation app_public.generations := app_private.lock_member_generation(generation_id);
begin
  if length(error) > 2000 then
    perform app_hidden.raise_error('INVALID_ERROR', 'The error message must be at most 2000 characters.');
  end if;
  if v_generation.status = 'failed' then
    return v_generation; -- a repeat, or its reservation expired first
  end if;
  if v_generation.status = 'succeeded' then
    perform app_hidden.raise_error('GENERATION_ALREADY_FINISHED', 'This generation has already succeeded.');
  end if;
  perform app_private.settle_reservation(v_generation.organization_id, v_generation.reservation_id, null,
    'released', null, v_generation.id);
  update app_public.generations g
  set status = 'failed', credits_charged = 0, completed_at = now(), error = coalesce(fail_generation.error, 'Failed.')
  where g.organization_id = v_generation.organization_id and g.id = v_generation.id
  returning * into v_generation;
  return v_generation;
end;
$$;
comment on function app_public.fail_generation(uuid, text) is
  E'@resultFieldName generation\nMarks a generation failed and releases all its credits: a failed generation costs nothing.';

--! split: 130-analytics.sql
-- Usage analytics: generations per time bucket, kind and model.
--
-- Measured before choosing (bench/analytics.ts, docs/readme/4-credits.md): the plain aggregate
-- over the generations of one organization, even from a covering index, grows with the number of
-- its generations (100,000 rows: tens of milliseconds and more when not cached), while a daily
-- rollup maintained by trigger answers any range from at most days x kinds x models rows. The
-- trigger's cost is one upsert per generation change, on a row that the organization's credit
-- account lock already serializes (start / complete / fail hold it), so it adds no contention.

create type app_public.usage_interval as enum ('day', 'week', 'month');

-- One row per organization, UTC day, kind and model. Derived from generations (a test and
-- app_private.rebuild_generation_usage_daily recompute it from scratch).
create table app_private.generation_usage_daily (
  organization_id uuid not null references app_public.organizations on delete cascade,
  day date not null,
  kind app_public.generation_kind not null,
  model text not null,
  generations bigint not null default 0,
  succeeded bigint not null default 0,
  failed bigint not null default 0,
  credits bigint not null default 0,
  -- Covering: a year of one organization is thousands of rows, spread over as many heap pages
  -- (every day adds rows for every organization); an index-only scan reads them from the index.
  -- Measured on 10M generations (one organization's year, 7,320 rows): 18.6 ms -> 4.6 ms p50.
  primary key (organization_id, day, kind, model) include (generations, succeeded, failed, credits)
);

create function app_private.tg_generations_usage_daily() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  if tg_op in ('UPDATE', 'DELETE') then
    update app_private.generation_usage_daily d
    set generations = d.generations - 1,
        succeeded = d.succeeded - (old.status = 'succeeded')::int,
        failed = d.failed - (old.status = 'failed')::int,
        credits = d.credits - coalesce(old.credits_charged, 0)
    where d.organization_id = old.organization_id and d.day = (old.created_at at time zone 'UTC')::date
      and d.kind = old.kind and d.model = old.model;
  end if;
  if tg_op in ('INSERT', 'UPDATE') then
    insert into app_private.generation_usage_daily as d (organization_id, day, kind, model, generations, succeeded, failed, credits)
    values (new.organization_id, (new.created_at at time zone 'UTC')::date, new.kind, new.model, 1,
            (new.status = 'succeeded')::int, (new.status = 'failed')::int, coalesce(new.credits_charged, 0))
    on conflict (organization_id, day, kind, model) do update
    set generations = d.generations + 1,
        succeeded = d.succeeded + excluded.succeeded,
        failed = d.failed + excluded.failed,
        credits = d.credits + excluded.credits;
  end if;
  return null;
end;
$$;
create trigger _300_usage_daily after insert or delete on app_public.generations
  for each row execute function app_private.tg_generations_usage_daily();
create trigger _300_usage_daily_update after update of status, credits_charged, kind, model on app_public.generations
  for each row
  when (old.status is distinct from new.status or old.credits_charged is distinct from new.credits_charged
        or old.kind is distinct from new.kind or old.model is distinct from new.model)
  execute function app_private.tg_generations_usage_daily();

-- Recomputes the rollup from generations (all organizations, or one): after bulk loads that
-- disabled the trigger, and to check it.
create function app_private.rebuild_generation_usage_daily(organization_id uuid default null) returns void
  language sql volatile security definer
  set search_path = pg_catalog, public
as $$
  delete from app_private.generation_usage_daily d
  where rebuild_generation_usage_daily.organization_id is null or d.organization_id = rebuild_generation_usage_daily.organization_id;
  insert into app_private.generation_usage_daily (organization_id, day, kind, model, generations, succeeded, failed, credits)
  select g.organization_id, (g.created_at at time zone 'UTC')::date, g.kind, g.model, count(*),
         count(*) filter (where g.status = 'succeeded'), count(*) filter (where g.status = 'failed'),
         coalesce(sum(g.credits_charged), 0)
  from app_public.generations g
  where rebuild_generation_usage_daily.organization_id is null or g.organization_id = rebuild_generation_usage_daily.organization_id
  group by 1, 2, 3, 4
  order by 1, 2, 3, 4;
$$;

select app_private.rebuild_generation_usage_daily();

create type app_public.usage_bucket as (
  bucket_start date,
  kind app_public.generation_kind,
  model text,
  generations bigint,
  succeeded bigint,
  failed bigint,
  credits bigint
);
comment on type app_public.usage_bucket is 'Generations of one kind and model started in one time bucket.';
comment on column app_public.usage_bucket.bucket_start is 'First day of the bucket (UTC; weeks start on Monday).';
comment on column app_public.usage_bucket.generations is 'Generations started.';
comment on column app_public.usage_bucket.succeeded is 'Of those, how many succeeded.';
comment on column app_public.usage_bucket.failed is 'Of those, how many failed.';
comment on column app_public.usage_bucket.credits is 'Credits they spent.';

create function app_public.organization_usage(
  organization_id uuid,
  "from" date,
  "to" date,
  "interval" app_public.usage_interval default 'day'
) returns setof app_public.usage_bucket
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
begin
  perform app_private.assert_member(organization_usage.organization_id);
  if "from" is null or "to" is null or "from" >= "to" then
    perform app_hidden.raise_error('INVALID_RANGE', 'from must be a date before to.');
  end if;
  if "to" - "from" > 3660 then
    perform app_hidden.raise_error('INVALID_RANGE', 'The range may span at most 10 years.');
  end if;
  return query
    select date_trunc(coalesce("interval", 'day')::text, d.day::timestamp)::date, d.kind, d.model,
           sum(d.generations)::bigint, sum(d.succeeded)::bigint, sum(d.failed)::bigint, sum(d.credits)::bigint
    from app_private.generation_usage_daily d
    where d.organization_id = organization_usage.organization_id
      and d.day >= "from" and d.day < "to"
    group by 1, 2, 3
    having sum(d.generations) > 0
    order by 1, 2, 3;
end;
$$;
comment on function app_public.organization_usage(uuid, date, date, app_public.usage_interval) is
  E'@behavior -connection +list\n@listSuffix omit\nGenerations of the organization per bucket (day, week or month, UTC), kind and model, started from `from` (inclusive) to `to` (exclusive). Members only.';

--! split: 140-jobs.sql
-- What the credit and usage jobs call (workers/tasks/). Each is safe to run twice and to run
-- from several workers at once: every step locks the rows it changes and re-checks that the work
-- is still due, and a batch takes organizations in one order (so two sweeps cannot deadlock).

-- Safety net behind the job queued at each reservation's expires_at: releases every open
-- reservation past its expiry (at most max_count per call). Returns how many it released.
create function app_private.expire_due_reservations(max_count int default 500) returns int
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_row record;
  v_count int := 0;
begin
  for v_row in
    select r.organization_id, r.id from app_public.credit_reservations r
    where r.status = 'open' and r.expires_at <= now()
    order by r.organization_id, r.id
    limit greatest(coalesce(max_count, 500), 1)
  loop
    if app_private.expire_reservation(v_row.organization_id, v_row.id) then
      v_count := v_count + 1;
    end if;
  end loop;
  return v_count;
end;
$$;

-- Removes what is left of every expired grant (at most max_orgs organizations per call).
create function app_private.expire_due_grants(max_orgs int default 500) returns int
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_organization_id uuid;
  v_count int := 0;
begin
  for v_organization_id in
    select distinct g.organization_id from app_public.credit_grants g
    where g.remaining > 0 and g.expires_at <= now()
    order by g.organization_id
    limit greatest(coalesce(max_orgs, 500), 1)
  loop
    v_count := v_count + app_private.expire_grants(v_organization_id);
  end loop;
  return v_count;
end;
$$;

-- Closes the organization's usage period if it has ended: its totals go to usage_periods, the
-- counters restart for the period containing now, and the plan's allowance for that period is
-- granted (idempotent per period). Returns whether it rolled over.
create function app_private.rollover_usage_period(organization_id uuid) returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_counter app_public.usage_counters;
  v_start timestamptz;
begin
  -- lock order of every credit operation: the credit account, then the counter row (captures
  -- and new generations update the counter while holding the account)
  perform app_private.lock_credit_account(rollover_usage_period.organization_id);
  select * into v_counter from app_public.usage_counters c
  where c.organization_id = rollover_usage_period.organization_id
  for update;
  if not found or v_counter.period_end > now() then
    return false;
  end if;
  insert into app_public.usage_periods (organization_id, period_start, period_end, generations, credits_spent, api_calls)
  values (v_counter.organization_id, v_counter.period_start, v_counter.period_end,
          v_counter.generations, v_counter.credits_spent, v_counter.api_calls)
  on conflict do nothing;
  -- the next period, or the current one if periods were missed (the gap shows in usage_periods)
  v_start := greatest(v_counter.period_end, app_hidden.usage_period_start(now()));
  update app_public.usage_counters c
  set period_start = v_start,
      period_end = app_hidden.usage_period_start(v_start) + interval '1 month',
      generations = 0, credits_spent = 0, api_calls = 0
  where c.organization_id = v_counter.organization_id;
  perform app_private.grant_monthly_allowance(v_counter.organization_id);
  perform app_private.record_audit_event(v_counter.organization_id, 'usage.period_closed', 'organization',
    v_counter.organization_id, jsonb_build_object('period_start', v_counter.period_start, 'period_end', v_counter.period_end,
      'generations', v_counter.generations, 'credits_spent', v_counter.credits_spent, 'api_calls', v_counter.api_calls));
  return true;
end;
$$;

create function app_private.rollover_due_usage_periods(max_orgs int default 500) returns int
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_organization_id uuid;
  v_count int := 0;
begin
  for v_organization_id in
    select c.organization_id from app_public.usage_counters c
    where c.period_end <= now()
    order by c.organization_id
    limit greatest(coalesce(max_orgs, 500), 1)
  loop
    if app_private.rollover_usage_period(v_organization_id) then
      v_count := v_count + 1;
    end if;
  end loop;
  return v_count;
end;
$$;

-- Counters recomputed from scratch: what the triggers must always agree with (tests and the
-- nightly check compare them). api_calls has no other record to recompute it from.
create function app_private.recomputed_usage_counters()
returns table (organization_id uuid, seat_count bigint, project_count bigint, generations bigint, credits_spent bigint)
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select o.id,
    (select count(*) from app_public.organization_members m
      where m.organization_id = o.id and (to_jsonb(m) ->> 'deleted_at') is null),
    (select count(*) from app_public.projects p where p.organization_id = o.id and p.deleted_at is null),
    (select count(*) from app_public.generations g where g.organization_id = o.id and g.created_at >= c.period_start),
    (select coalesce(sum(-l.amount), 0) from app_public.credit_ledger l
      where l.organization_id = o.id and l.kind = 'capture' and l.created_at >= c.period_start)::bigint
  from app_public.organizations o
  join app_public.usage_counters c on c.organization_id = o.id;
$$;

-- Organizations whose counters differ from the recomputed ones (empty when all is well).
create function app_private.usage_counter_discrepancies()
returns table (organization_id uuid, counter text, stored bigint, recomputed bigint)
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select r.organization_id, x.counter, x.stored, x.recomputed
  from app_private.recomputed_usage_counters() r
  join app_public.usage_counters c using (organization_id)
  cross join lateral (values
    ('seat_count', c.seat_count::bigint, r.seat_count),
    ('project_count', c.project_count::bigint, r.project_count),
    ('generations', c.generations, r.generations),
    ('credits_spent', c.credits_spent, r.credits_spent)
  ) x (counter, stored, recomputed)
  where x.stored <> x.recomputed;
$$;
