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
