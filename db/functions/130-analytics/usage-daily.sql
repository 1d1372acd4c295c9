-- Usage analytics: the daily rollup kept by trigger, its rebuild, and the organizationUsage query.

create or replace function app_private.tg_generations_usage_daily() returns trigger
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

-- Recomputes the rollup from generations (all organizations, or one): after bulk loads that
-- disabled the trigger, and to check it.
create or replace function app_private.rebuild_generation_usage_daily(organization_id uuid default null) returns void
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

create or replace function app_public.organization_usage(
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

create or replace trigger _300_usage_daily after insert or delete on app_public.generations
  for each row execute function app_private.tg_generations_usage_daily();

create or replace trigger _300_usage_daily_update after update of status, credits_charged, kind, model on app_public.generations
  for each row
  when (old.status is distinct from new.status or old.credits_charged is distinct from new.credits_charged
        or old.kind is distinct from new.kind or old.model is distinct from new.model)
  execute function app_private.tg_generations_usage_daily();
