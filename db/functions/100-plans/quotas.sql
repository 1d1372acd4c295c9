-- Quotas on what an organization can create, per hour and in total, as its plan says (columns
-- max_generations_per_hour, max_generations_per_period, max_projects_created_per_hour,
-- max_stored_projects, max_open_reservations of app_public.plans; null: no limit). Without
-- them one tenant at full speed, within every per-request limit, grows the shared tables and the
-- job queue without bound. Each is refused with QUOTA_EXCEEDED, whose extensions name the quota
-- (`quota`), its `limit`, and when it frees up (`resetsAt`, ISO 8601 UTC, and `retryAfter` in
-- seconds) where it does so by itself.

-- QUOTA_EXCEEDED with the quota's name, limit and reset time in extensions.
create or replace function app_private.raise_quota_exceeded(quota text, quota_limit bigint, resets_at timestamptz, message text)
  returns void
  language plpgsql volatile
  set search_path = pg_catalog, public
as $$
begin
  perform app_hidden.raise_error_with('QUOTA_EXCEEDED', message, jsonb_strip_nulls(jsonb_build_object(
    'quota', quota,
    'limit', quota_limit,
    'resetsAt', to_char(resets_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
    'retryAfter', case when resets_at is not null
      then greatest(1, ceil(extract(epoch from resets_at - clock_timestamp())))::int end)));
end;
$$;

-- The clock hour (UTC, whatever the session's TimeZone) a moment falls in.
create or replace function app_hidden.quota_hour_start(at timestamptz) returns timestamptz
  language sql immutable strict parallel safe
as $$
  select date_bin(interval '1 hour', at, timestamptz '2000-01-01 00:00:00+00');
$$;

-- Counts `amount` against an hourly quota and raises QUOTA_EXCEEDED when that passes max_per_hour
-- (the refused request's count rolls back with it). The upsert locks the organization's row for
-- this quota, so concurrent requests queue and count each other: never more than max_per_hour
-- per clock hour. A transaction that began before the hour turned counts in the newer window
-- rather than winding it back.
create or replace function app_private.consume_hourly_quota(
  organization_id uuid, quota text, max_per_hour int, what text, amount int default 1
) returns void
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_window timestamptz := app_hidden.quota_hour_start(now());
  v_used int;
  v_window_used timestamptz;
begin
  if max_per_hour is null then
    return;
  end if;
  insert into app_private.hourly_quota_usage as q (organization_id, quota, window_start, used)
  values (consume_hourly_quota.organization_id, consume_hourly_quota.quota, v_window, coalesce(amount, 1))
  on conflict on constraint hourly_quota_usage_pkey do update
    set window_start = greatest(q.window_start, excluded.window_start),
        used = case when q.window_start >= excluded.window_start then q.used + excluded.used else excluded.used end
  returning q.used, q.window_start into v_used, v_window_used;
  if v_used > max_per_hour then
    perform app_private.raise_quota_exceeded(quota, max_per_hour, v_window_used + interval '1 hour',
      format('This organization''s plan allows %s %s per hour; try again after the hour turns.', max_per_hour, what));
  end if;
end;
$$;
comment on function app_private.consume_hourly_quota(uuid, text, int, text, int) is
  'Counts against an hourly quota of the organization (row-locked); QUOTA_EXCEEDED past max_per_hour.';

-- Whether the current transaction acts for a client (a signed-in user or an API key): quotas
-- bound what tenants do through the API; an operator's SQL as the owner role is not counted.
create or replace function app_hidden.acting_for_client() returns boolean
  language plpgsql stable
  set search_path = pg_catalog, public
as $$
begin
  return app_public.current_user_id() is not null or app_hidden.current_api_key_id() is not null;
end;
$$;

-- Generations: per clock hour and per usage period, failed ones included (a failed generation
-- costs no credits but keeps its row and metadata). Called by start_generation under the
-- organization's credit-account lock, which every generation insert takes, so the period count
-- read here cannot race.
create or replace function app_private.assert_generation_quota(organization_id uuid) returns void
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_plan app_public.plans := app_private.organization_plan(assert_generation_quota.organization_id);
  v_counter app_public.usage_counters;
begin
  if v_plan.max_generations_per_period is not null then
    select * into v_counter from app_public.usage_counters c
    where c.organization_id = assert_generation_quota.organization_id;
    -- (a period past its end is about to be rolled over: its count no longer applies)
    if v_counter.period_end > now() and v_counter.generations >= v_plan.max_generations_per_period then
      perform app_private.raise_quota_exceeded('generationsPerPeriod', v_plan.max_generations_per_period,
        v_counter.period_end,
        format('This organization''s plan allows %s generations per month; the count starts again at the next period.',
          v_plan.max_generations_per_period));
    end if;
  end if;
  perform app_private.consume_hourly_quota(assert_generation_quota.organization_id, 'generationsPerHour',
    v_plan.max_generations_per_hour, 'generations');
end;
$$;
comment on function app_private.assert_generation_quota(uuid) is
  'QUOTA_EXCEEDED when the organization started as many generations as its plan allows this hour or period; else counts one.';

-- Projects: created or restored per clock hour (a deleted project still counts, so create and
-- delete cycles stop at the quota), and project rows kept in total, soft-deleted ones included.
-- Called by the project-count trigger (projects.sql) after assert_project_available, which holds
-- the organization's counter-row lock: concurrent creations count each other.
create or replace function app_private.assert_project_quota(organization_id uuid, is_new_row boolean) returns void
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_plan app_public.plans := app_private.organization_plan(assert_project_quota.organization_id);
  v_stored int;
begin
  if not app_hidden.acting_for_client() then
    return;
  end if;
  if is_new_row and v_plan.max_stored_projects is not null then
    -- (an AFTER trigger: the new row is among them)
    select count(*) into v_stored from (
      select 1 from app_public.projects p
      where p.organization_id = assert_project_quota.organization_id
      limit v_plan.max_stored_projects::bigint + 1
    ) s;
    if v_stored > v_plan.max_stored_projects then
      perform app_private.raise_quota_exceeded('storedProjects', v_plan.max_stored_projects, null,
        format('This organization''s plan keeps at most %s projects, deleted ones included.', v_plan.max_stored_projects));
    end if;
  end if;
  perform app_private.consume_hourly_quota(assert_project_quota.organization_id, 'projectsCreatedPerHour',
    v_plan.max_projects_created_per_hour, 'project creations and restores');
end;
$$;
comment on function app_private.assert_project_quota(uuid, boolean) is
  'QUOTA_EXCEEDED past the plan''s projects created per hour or stored projects; else counts one.';

-- Open credit reservations: each holds a job in the shared queue until it is settled or expires.
-- Called by reserve_credits under the organization's credit-account lock.
create or replace function app_private.assert_reservation_quota(organization_id uuid) returns void
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_max int := (app_private.organization_plan(assert_reservation_quota.organization_id)).max_open_reservations;
  v_open int;
begin
  if v_max is null then
    return;
  end if;
  select count(*) into v_open from (
    select 1 from app_public.credit_reservations r
    where r.organization_id = assert_reservation_quota.organization_id and r.status = 'open'
    limit v_max
  ) s;
  if v_open >= v_max then
    perform app_private.raise_quota_exceeded('openReservations', v_max, null,
      format('This organization''s plan allows %s open credit reservations at once; capture or release some first.', v_max));
  end if;
end;
$$;
comment on function app_private.assert_reservation_quota(uuid) is
  'QUOTA_EXCEEDED when the organization holds as many open reservations as its plan allows.';
