-- Spend caps, enforced: every reservation counts against each cap of its organization, its
-- project and its API key, in the reservation's own transaction, with the credit account and
-- the caps locked; what is released gives back. Exact under concurrency: the account lock
-- serializes the organization's reservations, so N concurrent ones against a cap of k × their
-- size admit exactly k.

-- SPEND_CAP_REACHED naming the cap: its id, scope (and project or API key), period, limit,
-- what it has spent this period, what was asked, and when it resets. A reservation above the
-- cap's per-reservation limit: period "reservation", limit maxPerReservation, no resetsAt.
create or replace function app_private.raise_spend_cap_reached(
  cap app_public.credit_spend_caps, period text, cap_limit bigint, spent bigint, requested bigint, resets_at timestamptz
) returns void
  language plpgsql volatile
  set search_path = pg_catalog, public
as $$
begin
  perform app_hidden.raise_error_with('SPEND_CAP_REACHED',
    case when period = 'reservation'
      then format('This %s''s spend cap allows at most %s credits in one reservation; %s were asked.',
                  replace(cap.scope::text, '_', ' '), cap_limit, requested)
      else format('This %s''s spend cap allows %s credits per %s; %s are spent and %s more were asked.',
                  replace(cap.scope::text, '_', ' '), cap_limit, period, spent, requested) end,
    jsonb_strip_nulls(jsonb_build_object(
      'capId', cap.id,
      'scope', cap.scope,
      'projectId', cap.project_id,
      'apiKeyId', cap.api_key_id,
      'period', period,
      'limit', cap_limit,
      'spent', spent,
      'requested', requested,
      'resetsAt', to_char(resets_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
      'retryAfter', case when resets_at is not null
        then greatest(1, ceil(extract(epoch from resets_at - clock_timestamp())))::int end)));
end;
$$;

-- Counts a new reservation against every cap that applies to it, or raises SPEND_CAP_REACHED
-- (the caller's transaction, reservation included, rolls back). The caller holds the account lock.
create or replace function app_private.charge_spend_caps(
  organization_id uuid, reservation_id uuid, amount bigint, project_id uuid, api_key_id uuid
) returns void
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_cap app_public.credit_spend_caps;
  v_window timestamptz;
  v_spent bigint;
begin
  for v_cap in
    select * from app_public.credit_spend_caps c
    where c.organization_id = charge_spend_caps.organization_id
      and (c.scope = 'organization'
           or (c.scope = 'project' and c.project_id = charge_spend_caps.project_id)
           or (c.scope = 'api_key' and c.api_key_id = charge_spend_caps.api_key_id))
    order by c.id
    for update
  loop
    v_window := app_hidden.spend_cap_current_window(v_cap);
    v_spent := case when v_cap.window_start >= v_window then v_cap.window_spent else 0 end;
    if v_cap.max_per_reservation is not null and amount > v_cap.max_per_reservation then
      perform app_private.raise_spend_cap_reached(v_cap, 'reservation', v_cap.max_per_reservation, null, amount, null);
    end if;
    if v_spent + amount > v_cap.max_credits then
      perform app_private.raise_spend_cap_reached(v_cap, v_cap.period::text, v_cap.max_credits, v_spent, amount,
        app_hidden.spend_cap_window_end(v_cap.period, v_window));
    end if;
    update app_public.credit_spend_caps c set window_start = v_window, window_spent = v_spent + amount
    where c.organization_id = v_cap.organization_id and c.id = v_cap.id;
    insert into app_private.credit_reservation_cap_charges (organization_id, reservation_id, cap_id, window_start, amount)
    values (charge_spend_caps.organization_id, charge_spend_caps.reservation_id, v_cap.id, v_window, amount);
  end loop;
end;
$$;

-- A reservation settles: `released` of its credits were not spent; each cap it was charged to
-- gets them back if its period is still the one charged (a past period is over and done).
create or replace function app_private.refund_spend_caps(organization_id uuid, reservation_id uuid, released bigint)
returns void
  language sql volatile security definer
  set search_path = pg_catalog, public
as $$
  with charged as (
    delete from app_private.credit_reservation_cap_charges x
    where x.organization_id = refund_spend_caps.organization_id and x.reservation_id = refund_spend_caps.reservation_id
    returning x.organization_id, x.cap_id, x.window_start, x.amount
  )
  update app_public.credit_spend_caps c
  set window_spent = greatest(c.window_spent - least(x.amount, refund_spend_caps.released), 0)
  from charged x
  where coalesce(refund_spend_caps.released, 0) > 0
    and c.organization_id = x.organization_id and c.id = x.cap_id and c.window_start = x.window_start;
$$;
