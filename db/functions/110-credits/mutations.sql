-- The credit mutations a member (or API key) calls: reserveCredits, captureCredits, releaseCredits.

create or replace function app_public.reserve_credits(
  organization_id uuid,
  amount numeric,
  idempotency_key text,
  ttl_seconds int default 900
) returns app_public.credit_reservations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_amount bigint;
begin
  perform app_private.assert_member(organization_id);
  v_amount := app_hidden.assert_valid_amount(amount);
  perform app_hidden.assert_valid_idempotency_key(idempotency_key, true);
  if coalesce(ttl_seconds, 900) not between 1 and 86400 then
    perform app_hidden.raise_error('INVALID_TTL', 'ttlSeconds must be between 1 and 86400.');
  end if;
  return app_private.reserve_credits(organization_id, v_amount, idempotency_key, coalesce(ttl_seconds, 900));
end;
$$;
comment on function app_public.reserve_credits(uuid, numeric, text, int) is
  E'@resultFieldName creditReservation\nHolds credits for work about to start (INSUFFICIENT_CREDITS if there are not enough). Released automatically after ttlSeconds (default 900) unless captured or released first. Repeating a call with the same idempotencyKey returns the first reservation.';

create or replace function app_public.capture_credits(
  reservation_id uuid,
  amount numeric default null,
  idempotency_key text default null
) returns app_public.credit_reservations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_organization_id uuid := app_private.member_reservation_organization(reservation_id);
  v_amount bigint;
  v_reserved bigint;
begin
  perform app_hidden.assert_valid_idempotency_key(idempotency_key, false);
  if amount is null then
    select r.amount into v_reserved from app_public.credit_reservations r
    where r.organization_id = v_organization_id and r.id = capture_credits.reservation_id;
    v_amount := v_reserved;
  else
    v_amount := app_hidden.assert_valid_amount(amount);
  end if;
  return app_private.settle_reservation(v_organization_id, reservation_id, v_amount, 'captured', idempotency_key);
end;
$$;
comment on function app_public.capture_credits(uuid, numeric, text) is
  E'@resultFieldName creditReservation\nSpends amount (default: all) of an open reservation and releases the rest. RESERVATION_ALREADY_SETTLED if it was captured or released already, RESERVATION_EXPIRED after its expiry. With an idempotencyKey, a repeat returns the first result.';

create or replace function app_public.release_credits(
  reservation_id uuid,
  idempotency_key text default null
) returns app_public.credit_reservations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_organization_id uuid := app_private.member_reservation_organization(reservation_id);
begin
  perform app_hidden.assert_valid_idempotency_key(idempotency_key, false);
  return app_private.settle_reservation(v_organization_id, reservation_id, null, 'released', idempotency_key);
end;
$$;
comment on function app_public.release_credits(uuid, text) is
  E'@resultFieldName creditReservation\nGives all credits of an open reservation back. RESERVATION_ALREADY_SETTLED if it was settled already. With an idempotencyKey, a repeat returns the first result.';
