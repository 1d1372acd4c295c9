-- The credit ledger: append-only truth; balances kept in step in the same transaction; amounts and
-- idempotency keys checked; every organization gets an account.

-- Amounts clients send are checked here (the API takes them as arbitrary-precision numbers so
-- that 1.5 or 10^20 reach this check and get INVALID_AMOUNT rather than a type error).
create or replace function app_hidden.assert_valid_amount(amount numeric) returns bigint
  language plpgsql immutable
as $$
begin
  if amount is null or amount <= 0 or amount <> trunc(amount) or amount > 1000000000000 then
    perform app_hidden.raise_error('INVALID_AMOUNT', 'Amount must be a whole number of credits from 1 to 10^12.');
  end if;
  return amount::bigint;
end;
$$;

create or replace function app_hidden.assert_valid_idempotency_key(key text, required boolean) returns void
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

-- Append-only for every role, the owner included. The one exception is the cascade that erases
-- a whole organization (its rows go with it; nothing is left to disagree with).
create or replace function app_private.tg_credit_ledger_append_only() returns trigger
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

-- Locks the organization's account for the rest of the transaction (the first step of every
-- credit operation) and returns it.
create or replace function app_private.lock_credit_account(organization_id uuid) returns app_public.credit_accounts
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

-- The ledger entry already written under this client key, if any (account locked by the caller).
create or replace function app_private.ledger_entry_by_key(organization_id uuid, idempotency_key text) returns app_public.credit_ledger
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select * from app_public.credit_ledger l
  where l.organization_id = ledger_entry_by_key.organization_id
    and l.idempotency_key = ledger_entry_by_key.idempotency_key;
$$;

-- The ledger entry already written under this system key, if any (account locked by the caller).
-- System keys live in their own column: no key a client sends can find or take one.
create or replace function app_private.ledger_entry_by_system_key(organization_id uuid, system_key text) returns app_public.credit_ledger
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
declare
  v_entry app_public.credit_ledger;
begin
  -- PL/pgSQL keeps this plan per connection (a security definer SQL function was planned on every call).
  select * into v_entry from app_public.credit_ledger l
  where l.organization_id = ledger_entry_by_system_key.organization_id
    and l.system_key = ledger_entry_by_system_key.system_key;
  if not found then
    return null;
  end if;
  return v_entry;
end;
$$;

-- Moves an account and records the move, in one place. The account row must already be locked by
-- the caller (lock_credit_account). The check constraints refuse a negative result.
create or replace function app_private.ledger_append(
  organization_id uuid,
  kind app_public.credit_entry_kind,
  available_delta bigint,
  reserved_delta bigint,
  source text default null,
  reservation_id uuid default null,
  generation_id uuid default null,
  grant_id uuid default null,
  idempotency_key text default null,
  stripe_event_id text default null,
  system_key text default null
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
    source, reservation_id, generation_id, grant_id, idempotency_key, stripe_event_id, system_key
  ) values (
    ledger_append.organization_id, ledger_append.kind, ledger_append.available_delta, ledger_append.reserved_delta,
    v_account.available, v_account.reserved, ledger_append.source, ledger_append.reservation_id,
    ledger_append.generation_id, ledger_append.grant_id, ledger_append.idempotency_key, ledger_append.stripe_event_id,
    ledger_append.system_key
  ) returning * into v_entry;
  return v_entry;
end;
$$;

create or replace function app_private.tg_organizations_credit_account() returns trigger
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

create or replace trigger _050_append_only before update or delete on app_public.credit_ledger
  for each row execute function app_private.tg_credit_ledger_append_only();

create or replace trigger _050_append_only_truncate before truncate on app_public.credit_ledger
  for each statement execute function app_private.tg_credit_ledger_append_only();

-- after _200_usage_counter: the allowance expires with the usage period
create or replace trigger _210_credit_account after insert on app_public.organizations
  for each row execute function app_private.tg_organizations_credit_account();
