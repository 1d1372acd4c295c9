-- Usage periods: when a period starts, and rolling every organization into the next one.

-- The usage period containing a moment: calendar months in UTC.
create or replace function app_hidden.usage_period_start(at timestamptz) returns timestamptz
  language sql immutable parallel safe
as $$
  select date_trunc('month', at at time zone 'UTC') at time zone 'UTC';
$$;

-- Closes the organization's usage period if it has ended: its totals go to usage_periods, the
-- counters restart for the period containing now, and the plan's allowance for that period is
-- granted (idempotent per period). Returns whether it rolled over.
create or replace function app_private.rollover_usage_period(organization_id uuid) returns boolean
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

create or replace function app_private.rollover_due_usage_periods(max_orgs int default 500) returns int
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
