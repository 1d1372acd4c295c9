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
