-- Credit grants: granting credits (once per key), the monthly allowance, and expiring what is left.

-- The implementation of grant_credits, with the Stripe event it came from (if any). Grants are
-- system operations (allowance, Stripe, operators): their key is a system key, never a client's.
create or replace function app_private.grant_credits_from(
  organization_id uuid,
  amount bigint,
  source text,
  expires_at timestamptz,
  system_key text,
  stripe_event_id text
) returns app_public.credit_ledger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  return app_private.grant_credits_in(grant_credits_from.organization_id, grant_credits_from.amount,
    app_hidden.credit_category_for_source(grant_credits_from.source), null, grant_credits_from.source,
    grant_credits_from.expires_at, grant_credits_from.system_key, grant_credits_from.stripe_event_id);
end;
$$;

-- A grant of a given category (null: the category default priority, grant-order.sql). What
-- every other grant function calls.
create or replace function app_private.grant_credits_in(
  organization_id uuid,
  amount bigint,
  category app_public.credit_grant_category,
  priority int,
  source text,
  expires_at timestamptz,
  system_key text,
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
  -- (operators' and billing code's mistakes, not a client's: no business code)
  if category is null then
    raise exception 'a grant needs a category (allowance, promotional, purchased or refund)';
  end if;
  if priority is not null and priority not between 0 and 100 then
    raise exception 'a grant''s priority must be from 0 to 100, not %', priority;
  end if;
  perform app_hidden.assert_valid_idempotency_key(system_key, false);
  perform app_private.lock_credit_account(grant_credits_in.organization_id);
  if system_key is not null then
    v_entry := app_private.ledger_entry_by_system_key(grant_credits_in.organization_id, system_key);
    if v_entry.id is not null then
      if v_entry.kind <> 'grant' or v_entry.amount <> grant_credits_in.amount then
        perform app_hidden.raise_error('IDEMPOTENCY_KEY_REUSED', 'This idempotency key was used for a different operation.');
      end if;
      return v_entry;
    end if;
  end if;
  insert into app_public.credit_grants (organization_id, source, category, priority, amount, remaining, expires_at)
  values (grant_credits_in.organization_id, source, category,
          coalesce(priority, app_hidden.credit_category_default_priority(category)), amount, amount, expires_at)
  returning id into v_grant_id;
  v_entry := app_private.ledger_append(grant_credits_in.organization_id, 'grant', amount, 0,
    source => source, grant_id => v_grant_id, system_key => system_key,
    stripe_event_id => stripe_event_id);
  -- A grant that is already past its expiry is granted and expired at once: both stay on record.
  if expires_at is not null and expires_at <= now() then
    perform app_private.expire_due_grants_locked(grant_credits_in.organization_id);
  end if;
  return v_entry;
end;
$$;

-- For purchases and allowances (billing code, jobs, operators; clients cannot call it).
-- Idempotent on the system key: a repeat returns the first entry and writes nothing.
create or replace function app_private.grant_credits(
  organization_id uuid,
  amount bigint,
  source text,
  expires_at timestamptz,
  system_key text
) returns app_public.credit_ledger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  return app_private.grant_credits_from(grant_credits.organization_id, grant_credits.amount, grant_credits.source,
                                        grant_credits.expires_at, grant_credits.system_key, null);
end;
$$;
comment on function app_private.grant_credits(uuid, bigint, text, timestamptz, text) is
  'Adds credits (source: purchase, monthly_allowance, manual, …) expiring at expires_at (null: never). Returns the ledger entry; repeating with the same system_key returns the first entry.';

-- A grant with an explicit category and priority (operators, promotions, auto top-up):
-- grant_credits derives the category from the source. Idempotent on the system key as grant_credits.
create or replace function app_private.grant_credits_as(
  organization_id uuid,
  amount bigint,
  category app_public.credit_grant_category,
  source text,
  expires_at timestamptz,
  system_key text,
  priority int default null
) returns app_public.credit_ledger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  return app_private.grant_credits_in(grant_credits_as.organization_id, grant_credits_as.amount, grant_credits_as.category,
    grant_credits_as.priority, grant_credits_as.source, grant_credits_as.expires_at, grant_credits_as.system_key, null);
end;
$$;
comment on function app_private.grant_credits_as(uuid, bigint, app_public.credit_grant_category, text, timestamptz, text, int) is
  'Adds credits of a category (allowance, promotional, purchased, refund) with a priority (0–100, null: the category default). Returns the ledger entry; repeating with the same system_key returns the first entry.';

-- The allowance of the organization's current usage period, expiring at its end. Idempotent per
-- period (the key names it), so the period rollover job and billing code can both call it.
create or replace function app_private.grant_monthly_allowance(organization_id uuid) returns app_public.credit_ledger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_counter app_public.usage_counters;
  v_plan app_public.plans := app_private.organization_plan(grant_monthly_allowance.organization_id);
begin
  -- A plan paid through Stripe gets its credits from each paid invoice (300-billing), not here.
  if app_private.organization_has_billed_plan(grant_monthly_allowance.organization_id) then
    return null;
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

-- Removes what is left of every grant of the organization that has expired, with one 'expire'
-- entry each. The account must be locked by the caller. Safe to call any number of times.
create or replace function app_private.expire_due_grants_locked(organization_id uuid) returns int
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
create or replace function app_private.expire_grants(organization_id uuid) returns int
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  perform app_private.lock_credit_account(expire_grants.organization_id);
  return app_private.expire_due_grants_locked(expire_grants.organization_id);
end;
$$;

-- Removes what is left of every expired grant (at most max_orgs organizations per call), each
-- organization in a subtransaction of its own: one failure is rolled back alone and reported
-- (400-operations/batch-failures.sql); the others go on.
create or replace function app_private.expire_due_grants(max_orgs int default 500) returns int
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_organization_id uuid;
  v_count int := 0;
  v_state text;
  v_message text;
begin
  for v_organization_id in
    select distinct g.organization_id from app_public.credit_grants g
    where g.remaining > 0 and g.expires_at <= now()
    order by g.organization_id
    limit greatest(coalesce(max_orgs, 500), 1)
  loop
    begin
      v_count := v_count + app_private.expire_grants(v_organization_id);
    exception when others then
      get stacked diagnostics v_state = returned_sqlstate, v_message = message_text;
      perform app_private.record_organization_failure('expire_credit_grants', v_organization_id, v_state, v_message);
    end;
  end loop;
  return v_count;
end;
$$;
