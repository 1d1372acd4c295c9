-- Usage periods: when a period starts, and rolling every organization into the next one.

-- The usage period containing a moment: calendar months in UTC.
create or replace function app_hidden.usage_period_start(at timestamptz) returns timestamptz
  language sql immutable parallel safe
as $$
  select date_trunc('month', at at time zone 'UTC') at time zone 'UTC';
$$;

-- The end of the usage period containing a moment: the next UTC month's start. The month is added
-- to UTC wall-clock time: `timestamptz + interval '1 month'` counts months in the session's
-- TimeZone, which ended the March period on March 28 at 23:00 UTC under America/New_York.
create or replace function app_hidden.usage_period_end(at timestamptz) returns timestamptz
  language sql immutable parallel safe
as $$
  select (date_trunc('month', at at time zone 'UTC') + interval '1 month') at time zone 'UTC';
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
      period_end = app_hidden.usage_period_end(v_start),
      generations = 0, credits_spent = 0, api_calls = 0
  where c.organization_id = v_counter.organization_id;
  perform app_private.grant_monthly_allowance(v_counter.organization_id);
  perform app_private.record_audit_event(v_counter.organization_id, 'usage.period_closed', 'organization',
    v_counter.organization_id, jsonb_build_object('period_start', v_counter.period_start, 'period_end', v_counter.period_end,
      'generations', v_counter.generations, 'credits_spent', v_counter.credits_spent, 'api_calls', v_counter.api_calls));
  return true;
end;
$$;

-- Rolls over every organization whose period has ended (at most max_orgs per call), each in a
-- subtransaction of its own: one organization's failure is rolled back alone, counted and
-- reported (400-operations/batch-failures.sql), and the others roll over regardless. The failed
-- one is still due, so the next run tries it again.
create or replace function app_private.rollover_due_usage_periods(max_orgs int default 500) returns int
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
    select c.organization_id from app_public.usage_counters c
    where c.period_end <= now()
    order by c.period_end, c.organization_id
    limit greatest(coalesce(max_orgs, 500), 1)
  loop
    begin
      if app_private.rollover_usage_period(v_organization_id) then
        v_count := v_count + 1;
      end if;
    exception when others then
      get stacked diagnostics v_state = returned_sqlstate, v_message = message_text;
      perform app_private.record_organization_failure('rollover_usage_periods', v_organization_id, v_state, v_message);
    end;
  end loop;
  return v_count;
end;
$$;
