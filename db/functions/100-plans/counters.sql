-- Usage counters: kept in step by triggers in the same transaction, and recomputed from the rows to check them.

-- Every organization gets its counter row in the transaction that creates it, before its first
-- member is inserted (create_organization inserts the owner right after). The period is set here
-- rather than by the column defaults, whose month arithmetic follows the session's TimeZone.
create or replace function app_private.tg_organizations_usage_counter() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  insert into app_public.usage_counters (organization_id, period_start, period_end)
  values (new.id, app_hidden.usage_period_start(now()), app_hidden.usage_period_end(now()))
  on conflict (organization_id) do nothing;
  return null;
end;
$$;

-- One API-key request, counted for the current period.
create or replace function app_private.count_api_call(organization_id uuid) returns void
  language sql volatile security definer
  set search_path = pg_catalog, public
as $$
  update app_public.usage_counters c set api_calls = c.api_calls + 1
  where c.organization_id = count_api_call.organization_id;
$$;

-- Counted in the usage period it starts in.
create or replace function app_private.tg_generations_count() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  update app_public.usage_counters c set generations = c.generations + 1
  where c.organization_id = new.organization_id;
  return null;
end;
$$;

-- Counters recomputed from scratch: what the triggers must always agree with (tests and the
-- nightly check compare them). api_calls has no other record to recompute it from.
create or replace function app_private.recomputed_usage_counters()
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
create or replace function app_private.usage_counter_discrepancies()
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

create or replace trigger _200_usage_counter after insert on app_public.organizations
  for each row execute function app_private.tg_organizations_usage_counter();

create or replace trigger _200_count after insert on app_public.generations
  for each row execute function app_private.tg_generations_count();
