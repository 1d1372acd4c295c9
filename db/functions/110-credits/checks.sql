-- The invariants of credits, checked per organization by the nightly job: balance = sum(ledger),
-- every running generation holds an open reservation of its own, and what each spend cap counts
-- as spent in its window is what was charged and captured in it.

-- Every organization whose account disagrees with its ledger, its grants or its reservations.
-- Empty when all is well.
create or replace function app_private.credit_ledger_discrepancies()
returns table (
  organization_id uuid,
  available bigint, reserved bigint,
  ledger_available numeric, ledger_reserved numeric,
  grants_remaining numeric, open_reserved numeric, allocated numeric
)
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select * from (
    select a.organization_id, a.available, a.reserved,
      coalesce((select sum(l.available_delta) from app_public.credit_ledger l where l.organization_id = a.organization_id), 0),
      coalesce((select sum(l.reserved_delta) from app_public.credit_ledger l where l.organization_id = a.organization_id), 0),
      coalesce((select sum(g.remaining) from app_public.credit_grants g where g.organization_id = a.organization_id), 0),
      coalesce((select sum(r.amount) from app_public.credit_reservations r where r.organization_id = a.organization_id and r.status = 'open'), 0),
      coalesce((select sum(x.amount) from app_private.credit_reservation_allocations x where x.organization_id = a.organization_id), 0)
    from app_public.credit_accounts a
  ) t (organization_id, available, reserved, ledger_available, ledger_reserved, grants_remaining, open_reserved, allocated)
  where t.available <> t.ledger_available or t.reserved <> t.ledger_reserved
     or t.available <> t.grants_remaining or t.reserved <> t.open_reserved or t.reserved <> t.allocated;
$$;
comment on function app_private.credit_ledger_discrepancies() is
  'Organizations whose credit account differs from the sum of their ledger, grants or open reservations.';

-- Every running generation whose reservation is not an open one of its own: it could never
-- complete or fail. (Before system keys had their own column, a generation could adopt a
-- reservation a client had made and released under the key 'generation:<its key>'.)
create or replace function app_private.generation_reservation_discrepancies()
returns table (organization_id uuid, generation_id uuid, reservation_id uuid, reservation_status text)
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select g.organization_id, g.id, g.reservation_id, coalesce(r.status::text, 'missing')
    from app_public.generations g
    left join app_public.credit_reservations r on r.organization_id = g.organization_id and r.id = g.reservation_id
   where g.status = 'running'
     and (r.id is null or r.status <> 'open' or r.system_key is distinct from 'generation:' || g.id);
$$;
comment on function app_private.generation_reservation_discrepancies() is
  'Running generations whose reservation is missing, settled, or not their own.';

-- Every spend cap whose counter differs from what its current window holds: window_spent must be
-- the open reservations charged to that window (credit_reservation_cap_charges) plus the captures
-- of the reservations made in it (since the cap exists) that fall under the cap: all of the
-- organization's, a project's generations', or an API key's (credit_reservations.api_key_id).
-- Released and expired credits were given back. (A
-- reservation made in the last instant of a window while a concurrent one had already moved the
-- cap to the next is charged to the next window and would show here: a person should look.)
create or replace function app_private.spend_cap_window_discrepancies()
returns table (
  organization_id uuid, cap_id uuid, scope text, window_start timestamptz,
  window_spent bigint, open_charged numeric, captured numeric
)
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
begin
  -- PL/pgSQL: the window helpers are declared in spend-caps.sql, which is applied after this file.
  return query
  select * from (
    select c.organization_id, c.id, c.scope::text, c.window_start, c.window_spent,
      coalesce((select sum(x.amount) from app_private.credit_reservation_cap_charges x
                where x.organization_id = c.organization_id and x.cap_id = c.id and x.window_start = c.window_start), 0),
      coalesce((select sum(r.captured_amount) from app_public.credit_reservations r
                where r.organization_id = c.organization_id and r.status = 'captured'
                  and r.created_at >= greatest(c.window_start, c.created_at)
                  and r.created_at < app_hidden.spend_cap_window_end(c.period, c.window_start)
                  and (c.scope = 'organization'
                       or (c.scope = 'api_key' and r.api_key_id = c.api_key_id)
                       or (c.scope = 'project' and exists (select 1 from app_public.generations g
                                  where g.organization_id = r.organization_id and g.reservation_id = r.id
                                    and g.project_id = c.project_id)))), 0)
    from app_public.credit_spend_caps c
    where c.window_start > '-infinity'
  ) t (organization_id, cap_id, scope, window_start, window_spent, open_charged, captured)
  where t.window_spent <> t.open_charged + t.captured;
end;
$$;
comment on function app_private.spend_cap_window_discrepancies() is
  'Spend caps whose spent counter differs from the open charges plus the captures of their current window.';
