-- Reservations: reserve, then capture or release; what happens when one expires.

-- A reservation of the organization (no project): reserveCredits.
create or replace function app_private.reserve_credits(
  organization_id uuid,
  amount bigint,
  idempotency_key text,
  ttl_seconds int,
  generation_id uuid default null
) returns app_public.credit_reservations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  return app_private.reserve_credits_for(reserve_credits.organization_id, reserve_credits.amount,
    reserve_credits.idempotency_key, reserve_credits.ttl_seconds, reserve_credits.generation_id, null);
end;
$$;

-- Holds `amount` credits from the grants, in the spending order (grant-order.sql), within the
-- spend caps of the organization, the project (if any) and the API key of the request (if any).
create or replace function app_private.reserve_credits_for(
  organization_id uuid,
  amount bigint,
  idempotency_key text,
  ttl_seconds int,
  generation_id uuid,
  project_id uuid
) returns app_public.credit_reservations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_account app_public.credit_accounts;
  v_entry app_public.credit_ledger;
  v_reservation app_public.credit_reservations;
  v_grant_ids uuid[];
  v_takes bigint[];
  -- A generation's reservation is keyed by the generation (a system key); any other by the key
  -- the client sent. The two live in different columns, so neither can find the other.
  v_system_key text := 'generation:' || generation_id;
begin
  if (generation_id is null) = (idempotency_key is null) then
    raise exception 'reserve_credits takes a client idempotency key or a generation id, not both';
  end if;
  v_account := app_private.lock_credit_account(reserve_credits_for.organization_id);
  v_entry := case when generation_id is null
    then app_private.ledger_entry_by_key(reserve_credits_for.organization_id, idempotency_key)
    else app_private.ledger_entry_by_system_key(reserve_credits_for.organization_id, v_system_key) end;
  if v_entry.id is not null then
    select * into v_reservation from app_public.credit_reservations r
    where r.organization_id = reserve_credits_for.organization_id and r.id = v_entry.reservation_id;
    if v_entry.kind <> 'reserve' or v_reservation.amount <> reserve_credits_for.amount then
      perform app_hidden.raise_error('IDEMPOTENCY_KEY_REUSED', 'This idempotency key was used for a different operation.');
    end if;
    return v_reservation;
  end if;

  if app_private.expire_due_grants_locked(reserve_credits_for.organization_id) > 0 then
    v_account := app_private.lock_credit_account(reserve_credits_for.organization_id);
  end if;
  if v_account.available < amount then
    perform app_hidden.raise_error('INSUFFICIENT_CREDITS',
      format('Not enough credits: %s available, %s requested.', v_account.available, amount));
  end if;
  -- each open reservation holds a job in the shared queue: at most the plan's number at once
  perform app_private.assert_reservation_quota(reserve_credits_for.organization_id);

  insert into app_public.credit_reservations (organization_id, amount, idempotency_key, system_key, expires_at, api_key_id)
  values (reserve_credits_for.organization_id, amount, idempotency_key, v_system_key, now() + make_interval(secs => ttl_seconds),
          app_hidden.current_api_key_id())
  returning * into v_reservation;

  -- Within every spend cap that applies (SPEND_CAP_REACHED otherwise; rolls all of this back).
  perform app_private.charge_spend_caps(reserve_credits_for.organization_id, v_reservation.id, amount,
    reserve_credits_for.project_id, v_reservation.api_key_id);

  -- Hold the credits from the grants, in the spending order.
  select coalesce(array_agg(t.grant_id), '{}'), coalesce(array_agg(t.take), '{}') into v_grant_ids, v_takes
  from app_private.take_from_grants(reserve_credits_for.organization_id, amount) t;
  update app_public.credit_grants g set remaining = g.remaining - x.take
  from unnest(v_grant_ids, v_takes) as x (grant_id, take)
  where g.organization_id = reserve_credits_for.organization_id and g.id = x.grant_id;
  insert into app_private.credit_reservation_allocations (organization_id, reservation_id, grant_id, amount)
  select reserve_credits_for.organization_id, v_reservation.id, x.grant_id, x.take
  from unnest(v_grant_ids, v_takes) as x (grant_id, take);

  -- (which grants hold them is in credit_reservation_allocations until it settles; the capture
  -- entry records which grants paid)
  perform app_private.ledger_append(reserve_credits_for.organization_id, 'reserve', -amount, amount,
    reservation_id => v_reservation.id, generation_id => generation_id, idempotency_key => idempotency_key,
    system_key => v_system_key);

  -- Release it at expires_at if nobody settles it first (the job is a no-op otherwise).
  perform graphile_worker.add_job(
    'expire_credit_reservation',
    json_build_object('organizationId', v_reservation.organization_id, 'reservationId', v_reservation.id),
    run_at => v_reservation.expires_at,
    job_key => 'credits:expire-reservation:' || v_reservation.id,
    max_attempts => 10);
  return v_reservation;
end;
$$;

-- Settles an open reservation: `capture` credits are spent (taken from the grants it holds, in
-- the spending order), the rest goes back to the grants it came from. status: captured, released
-- or expired. Returns the reservation, or a replay of the first result for a repeated key.
create or replace function app_private.settle_reservation(
  organization_id uuid,
  reservation_id uuid,
  capture bigint,
  status app_public.credit_reservation_status,
  idempotency_key text,
  generation_id uuid default null
) returns app_public.credit_reservations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_entry app_public.credit_ledger;
  v_reservation app_public.credit_reservations;
  v_grant_ids uuid[];
  v_takes bigint[];
begin
  perform app_private.lock_credit_account(settle_reservation.organization_id);
  if idempotency_key is not null then
    v_entry := app_private.ledger_entry_by_key(settle_reservation.organization_id, idempotency_key);
    if v_entry.id is not null then
      select * into v_reservation from app_public.credit_reservations r
      where r.organization_id = settle_reservation.organization_id and r.id = settle_reservation.reservation_id;
      if v_entry.reservation_id is distinct from settle_reservation.reservation_id
         or v_reservation.status is distinct from settle_reservation.status
         or (settle_reservation.status = 'captured' and v_reservation.captured_amount <> capture) then
        perform app_hidden.raise_error('IDEMPOTENCY_KEY_REUSED', 'This idempotency key was used for a different operation.');
      end if;
      return v_reservation;
    end if;
  end if;

  select * into v_reservation from app_public.credit_reservations r
  where r.organization_id = settle_reservation.organization_id and r.id = settle_reservation.reservation_id
  for update;
  if not found then
    perform app_hidden.raise_error('NOT_FOUND', 'No such reservation.');
  end if;
  if v_reservation.status = 'expired' and settle_reservation.status = 'captured' then
    perform app_hidden.raise_error('RESERVATION_EXPIRED', 'This reservation has expired; its credits were released.');
  end if;
  if v_reservation.status <> 'open' then
    perform app_hidden.raise_error('RESERVATION_ALREADY_SETTLED',
      format('This reservation was already %s.', v_reservation.status));
  end if;
  if settle_reservation.status = 'captured' then
    if v_reservation.expires_at <= now() then
      perform app_hidden.raise_error('RESERVATION_EXPIRED', 'This reservation has expired; its credits were released.');
    end if;
    if capture is null or capture <= 0 or capture > v_reservation.amount then
      perform app_hidden.raise_error('INVALID_AMOUNT',
        format('Capture between 1 and the %s credits reserved.', v_reservation.amount));
    end if;
  end if;

  -- Spend `capture` from the grants held, in the spending order; give the rest back.
  select coalesce(array_agg(t.grant_id), '{}'), coalesce(array_agg(t.take), '{}') into v_grant_ids, v_takes
  from app_private.take_from_grants(settle_reservation.organization_id, coalesce(capture, 0), settle_reservation.reservation_id) t;
  update app_public.credit_grants g set remaining = g.remaining + (a.amount - coalesce(x.take, 0))
  from app_private.credit_reservation_allocations a
  left join unnest(v_grant_ids, v_takes) as x (grant_id, take) on x.grant_id = a.grant_id
  where a.organization_id = settle_reservation.organization_id and a.reservation_id = settle_reservation.reservation_id
    and g.organization_id = a.organization_id and g.id = a.grant_id and a.amount - coalesce(x.take, 0) > 0;
  delete from app_private.credit_reservation_allocations a
  where a.organization_id = settle_reservation.organization_id and a.reservation_id = settle_reservation.reservation_id;
  -- What is not spent no longer counts against the spend caps it was charged to.
  perform app_private.refund_spend_caps(settle_reservation.organization_id, settle_reservation.reservation_id,
    v_reservation.amount - coalesce(capture, 0));

  if coalesce(capture, 0) > 0 then
    v_entry := app_private.ledger_append(settle_reservation.organization_id, 'capture', 0, -capture,
      reservation_id => v_reservation.id, generation_id => generation_id, idempotency_key => idempotency_key);
    perform app_private.record_ledger_allocations(v_entry, v_grant_ids, v_takes);
    update app_public.usage_counters c set credits_spent = c.credits_spent + capture
    where c.organization_id = settle_reservation.organization_id;
  end if;
  if v_reservation.amount - coalesce(capture, 0) > 0 then
    perform app_private.ledger_append(settle_reservation.organization_id, 'release',
      v_reservation.amount - coalesce(capture, 0), -(v_reservation.amount - coalesce(capture, 0)),
      source => case settle_reservation.status when 'expired' then 'reservation_expired' end,
      reservation_id => v_reservation.id, generation_id => generation_id,
      idempotency_key => case when coalesce(capture, 0) = 0 then idempotency_key end);
  end if;

  update app_public.credit_reservations r
  set status = settle_reservation.status,
      captured_amount = case when settle_reservation.status = 'captured' then capture end,
      settled_at = now()
  where r.organization_id = v_reservation.organization_id and r.id = v_reservation.id
  returning * into v_reservation;

  -- Settled before it expired: its expiry job has nothing left to do, so it leaves the shared
  -- queue now, in this transaction (with the key reserve_credits gave it), instead of waiting
  -- there until expires_at. (An expiry is run by that job itself.)
  if settle_reservation.status in ('captured', 'released') then
    perform graphile_worker.remove_job('credits:expire-reservation:' || v_reservation.id);
  end if;

  -- Credits returned to a grant that expired meanwhile expire now.
  perform app_private.expire_due_grants_locked(settle_reservation.organization_id);
  return v_reservation;
end;
$$;

-- What the expiry job calls: releases the reservation if it is still open and past expires_at.
-- Returns whether it did anything (safe to run twice).
create or replace function app_private.expire_reservation(organization_id uuid, reservation_id uuid) returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_reservation app_public.credit_reservations;
begin
  perform app_private.lock_credit_account(expire_reservation.organization_id);
  select * into v_reservation from app_public.credit_reservations r
  where r.organization_id = expire_reservation.organization_id and r.id = expire_reservation.reservation_id
  for update;
  if not found or v_reservation.status <> 'open' or v_reservation.expires_at > now() then
    return false;
  end if;
  perform app_private.settle_reservation(expire_reservation.organization_id, expire_reservation.reservation_id,
    null, 'expired', null);
  return true;
end;
$$;

-- The organization of a reservation the caller may act on, or NOT_FOUND (also for other tenants'
-- reservations: their existence is not disclosed).
create or replace function app_private.member_reservation_organization(reservation_id uuid) returns uuid
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
declare
  v_organization_id uuid;
begin
  if reservation_id is null then
    perform app_hidden.raise_error('NOT_FOUND', 'No such reservation.');
  end if;
  select r.organization_id into v_organization_id
  from app_public.credit_reservations r
  where r.id = member_reservation_organization.reservation_id
    and r.organization_id = any (app_public.current_user_organization_ids());
  if v_organization_id is null then
    perform app_hidden.raise_error('NOT_FOUND', 'No such reservation.');
  end if;
  return v_organization_id;
end;
$$;

-- Safety net behind the job queued at each reservation's expires_at: releases every open
-- reservation past its expiry (at most max_count per call). Returns how many it released.
-- The sweep behind each reservation's own expiry job: every overdue open reservation (at most
-- max_count per call), each in a subtransaction of its own, so one organization's failure is
-- rolled back alone and reported (400-operations/batch-failures.sql).
create or replace function app_private.expire_due_reservations(max_count int default 500) returns int
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_row record;
  v_count int := 0;
  v_state text;
  v_message text;
begin
  for v_row in
    select r.organization_id, r.id from app_public.credit_reservations r
    where r.status = 'open' and r.expires_at <= now()
    order by r.organization_id, r.id
    limit greatest(coalesce(max_count, 500), 1)
  loop
    begin
      if app_private.expire_reservation(v_row.organization_id, v_row.id) then
        v_count := v_count + 1;
      end if;
    exception when others then
      get stacked diagnostics v_state = returned_sqlstate, v_message = message_text;
      perform app_private.record_organization_failure('expire_credit_reservation', v_row.organization_id, v_state, v_message);
    end;
  end loop;
  return v_count;
end;
$$;

-- When the reservation of a generation still running expires, the generation has failed.
create or replace function app_private.tg_credit_reservations_expired() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  update app_public.generations g
  set status = 'failed', credits_charged = 0, completed_at = now(),
      error = 'Timed out: its credit reservation expired before it completed.'
  where g.organization_id = new.organization_id and g.reservation_id = new.id
    and g.status in ('pending', 'running');
  return null;
end;
$$;

create or replace trigger _300_expire_generation after update of status on app_public.credit_reservations
  for each row when (new.status = 'expired' and old.status = 'open')
  execute function app_private.tg_credit_reservations_expired();
