-- The one order in which credits leave grants (reserve, capture, debit all walk it), the default
-- priority of each category, and the balance by category.

-- Default priority (0–100, lower is spent first) of a grant of each category: the plan's
-- allowance, which lapses at the period's end, first; paid-for credits last.
create or replace function app_hidden.credit_category_default_priority(category app_public.credit_grant_category)
returns smallint
  language sql immutable strict parallel safe
as $$
  select case category when 'allowance' then 10 when 'promotional' then 20 when 'refund' then 30 else 40 end::smallint;
$$;

-- The category of a grant made by a caller that names only its source (billing code written
-- before categories existed): subscriptions and the monthly allowance are the plan's credits,
-- purchases are paid for, refunds are refunds, anything else an operator gave.
create or replace function app_hidden.credit_category_for_source(source text)
returns app_public.credit_grant_category
  language sql immutable parallel safe
as $$
  select case
    when source in ('monthly_allowance', 'subscription') then 'allowance'
    when source in ('purchase', 'auto_top_up') then 'purchased'
    when source = 'refund' then 'refund'
    else 'promotional' end::app_public.credit_grant_category;
$$;

-- THE spending order, locked: the grants credits are taken from, first to last, with what each can
-- give. Without reservation_id: every grant of the organization with credits left (what reserve
-- and debit take). With it: the grants that reservation holds credits of, and how many (what a
-- capture spends from). The order: priority, then soonest expiry (never-expiring last), then
-- category (promotional before refund before purchased: the enum's order), then oldest. The
-- caller holds the account lock.
create or replace function app_private.grants_in_spend_order(organization_id uuid, reservation_id uuid default null)
returns table (ordinal bigint, grant_id uuid, amount bigint)
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  if reservation_id is null then
    -- (FOR UPDATE cannot share a query with a window function: lock, then number.)
    perform 1 from app_public.credit_grants g
    where g.organization_id = grants_in_spend_order.organization_id and g.remaining > 0
    for update of g;
    return query
      select row_number() over (order by g.priority, g.expires_at nulls last, g.category, g.created_at, g.id), g.id, g.remaining
      from app_public.credit_grants g
      where g.organization_id = grants_in_spend_order.organization_id and g.remaining > 0
      order by 1;
  else
    perform 1 from app_private.credit_reservation_allocations a
    join app_public.credit_grants g on g.organization_id = a.organization_id and g.id = a.grant_id
    where a.organization_id = grants_in_spend_order.organization_id and a.reservation_id = grants_in_spend_order.reservation_id
    for update of a, g;
    return query
      select row_number() over (order by g.priority, g.expires_at nulls last, g.category, g.created_at, g.id), g.id, a.amount
      from app_private.credit_reservation_allocations a
      join app_public.credit_grants g on g.organization_id = a.organization_id and g.id = a.grant_id
      where a.organization_id = grants_in_spend_order.organization_id and a.reservation_id = grants_in_spend_order.reservation_id
      order by 1;
  end if;
end;
$$;
comment on function app_private.grants_in_spend_order(uuid, uuid) is
  'The grants credits are taken from, in the one spending order (priority, soonest expiry, category, oldest), locked.';

-- How much of `amount` each grant gives, walking the spending order: (grant, take) for every grant
-- that gives something. Raises if the grants hold less than amount (the account disagrees).
create or replace function app_private.take_from_grants(organization_id uuid, amount bigint, reservation_id uuid default null)
returns table (grant_id uuid, take bigint)
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_left bigint := coalesce(amount, 0);
  v_row record;
begin
  for v_row in select * from app_private.grants_in_spend_order(take_from_grants.organization_id, take_from_grants.reservation_id) o order by o.ordinal
  loop
    exit when v_left = 0;
    grant_id := v_row.grant_id;
    take := least(v_left, v_row.amount);
    v_left := v_left - take;
    return next;
  end loop;
  if v_left <> 0 then
    raise exception 'credit grants of organization % disagree with its account', take_from_grants.organization_id;
  end if;
end;
$$;

-- Records which grants paid for a ledger entry.
create or replace function app_private.record_ledger_allocations(entry app_public.credit_ledger, grant_ids uuid[], amounts bigint[])
returns void
  language sql volatile security definer
  set search_path = pg_catalog, public
as $$
  insert into app_public.credit_ledger_allocations (organization_id, ledger_entry_id, grant_id, amount)
  select (entry).organization_id, (entry).id, x.grant_id, x.amount
  from unnest(grant_ids, amounts) as x (grant_id, amount)
  where x.amount > 0;
$$;

-- Available credits by category, for a client to show "12,000 monthly + 5,000 purchased": every
-- category, 0 where there is none; the sum is the account's available.
create or replace function app_public.credit_accounts_available_by_category(account app_public.credit_accounts)
returns jsonb
  language sql stable
  set search_path = pg_catalog, public
as $$
  select jsonb_object_agg(c.category, coalesce(s.available, 0) order by c.category)
  from unnest(enum_range(null::app_public.credit_grant_category)) as c (category)
  left join (
    select g.category, sum(g.remaining)::bigint as available
    from app_public.credit_grants g
    where g.organization_id = account.organization_id and g.remaining > 0
    group by g.category
  ) s on s.category = c.category;
$$;
comment on function app_public.credit_accounts_available_by_category(app_public.credit_accounts) is
  'Available credits per grant category: {"allowance": 12000, "promotional": 0, "refund": 0, "purchased": 5000}. Their sum is available.';

create or replace trigger _100_audit_columns before insert or update on app_public.credit_ledger_allocations
  for each row execute function app_private.tg_audit_columns();
