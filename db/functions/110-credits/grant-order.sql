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

-- THE spending order, decided here and nowhere else: how much of `amount` each grant gives,
-- first to last, as (grant, take) for every grant that gives something, the grants locked. The
-- order: priority, then soonest expiry (never-expiring last), then category (promotional before
-- refund before purchased: the enum's order), then oldest (created_at, then id). Without
-- reservation_id it walks every grant of the organization with credits left (what reserve and
-- debit take); with it, the grants that reservation holds credits of, up to what it holds of
-- each (what a capture spends). Raises if they hold less than amount (the account disagrees).
-- The caller holds the account lock.
create or replace function app_private.take_from_grants(organization_id uuid, amount bigint, reservation_id uuid default null)
returns table (grant_id uuid, take bigint)
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_left bigint := coalesce(amount, 0);
  v_row record;
begin
  if reservation_id is null then
    -- (a cursor: rows are locked as they are read, so a large amount locks only the grants it needs)
    for v_row in
      select g.id, g.remaining as available
      from app_public.credit_grants g
      where g.organization_id = take_from_grants.organization_id and g.remaining > 0
      order by g.priority, g.expires_at nulls last, g.category, g.created_at, g.id
      for update of g
    loop
      exit when v_left = 0;
      grant_id := v_row.id;
      take := least(v_left, v_row.available);
      v_left := v_left - take;
      return next;
    end loop;
  else
    for v_row in
      select g.id, a.amount as available
      from app_private.credit_reservation_allocations a
      join app_public.credit_grants g on g.organization_id = a.organization_id and g.id = a.grant_id
      where a.organization_id = take_from_grants.organization_id and a.reservation_id = take_from_grants.reservation_id
      order by g.priority, g.expires_at nulls last, g.category, g.created_at, g.id
      for update of a, g
    loop
      exit when v_left = 0;
      grant_id := v_row.id;
      take := least(v_left, v_row.available);
      v_left := v_left - take;
      return next;
    end loop;
  end if;
  if v_left <> 0 then
    raise exception 'credit grants of organization % disagree with its account', take_from_grants.organization_id;
  end if;
end;
$$;
comment on function app_private.take_from_grants(uuid, bigint, uuid) is
  'The one spending order (priority, soonest expiry, category, oldest): which grants give how much of amount, locked.';

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
