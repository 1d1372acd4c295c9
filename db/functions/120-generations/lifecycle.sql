-- Generations: start (reserving credits), complete (capturing them) or fail (releasing them).

create or replace function app_public.start_generation(
  organization_id uuid,
  project_id uuid,
  kind app_public.generation_kind,
  model text,
  metadata jsonb,
  estimated_credits numeric,
  idempotency_key text
) returns app_public.generations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_amount bigint;
  v_generation app_public.generations;
  v_id uuid := app_hidden.uuid_generate_v7();
  v_reservation app_public.credit_reservations;
begin
  perform app_private.assert_member(organization_id);
  v_amount := app_hidden.assert_valid_amount(estimated_credits);
  perform app_hidden.assert_valid_idempotency_key(idempotency_key, true);
  if kind is null then
    perform app_hidden.raise_error('INVALID_KIND', 'A generation needs a kind.');
  end if;
  if model is null or length(btrim(model)) not between 1 and 100 then
    perform app_hidden.raise_error('INVALID_MODEL', 'Model must be 1 to 100 characters.');
  end if;
  if metadata is not null and jsonb_typeof(metadata) <> 'object' then
    perform app_hidden.raise_error('INVALID_METADATA', 'Metadata must be a JSON object.');
  end if;
  -- Its text is what every read sends: 200 rows × 20 aliases of 64 kB made a 258 MB response.
  if octet_length(metadata::text) > 16384 then
    perform app_hidden.raise_error('INVALID_METADATA', 'Metadata must be at most 16 kB as JSON text.');
  end if;

  -- The account lock serializes this organization's credit operations, so the idempotency check
  -- below cannot race with itself.
  perform app_private.lock_credit_account(organization_id);
  select * into v_generation from app_public.generations g
  where g.organization_id = start_generation.organization_id and g.idempotency_key = start_generation.idempotency_key;
  if found then
    if v_generation.project_id is distinct from start_generation.project_id or v_generation.credits_estimated <> v_amount then
      perform app_hidden.raise_error('IDEMPOTENCY_KEY_REUSED', 'This idempotency key was used for a different generation.');
    end if;
    return v_generation;
  end if;
  if not exists (
    select 1 from app_public.projects p
    where p.organization_id = start_generation.organization_id and p.id = start_generation.project_id
      and p.deleted_at is null
  ) then
    perform app_hidden.raise_error('NOT_FOUND', 'No such project.');
  end if;
  -- per-hour and per-period quotas of the plan (100-plans/quotas.sql); a replay above is free
  perform app_private.assert_generation_quota(organization_id);

  -- Keyed by the new generation's id, a system key: a client's reservation can never be taken for
  -- it (the client's idempotency key is the generation's own, checked above).
  -- (reserve_credits_for: the project's spend caps apply too, 110-credits/spend-cap-charges.sql)
  v_reservation := app_private.reserve_credits_for(organization_id, v_amount, null, 3600, v_id, project_id);
  insert into app_public.generations (
    organization_id, id, project_id, kind, model, status, credits_estimated, reservation_id, idempotency_key, metadata
  ) values (
    organization_id, v_id, project_id, kind, btrim(model), 'running', v_amount, v_reservation.id, idempotency_key,
    coalesce(metadata, '{}')
  ) returning * into v_generation;
  return v_generation;
end;
$$;
comment on function app_public.start_generation(uuid, uuid, app_public.generation_kind, text, jsonb, numeric, text) is
  E'@resultFieldName generation\nStarts a generation and reserves its estimated credits in one step (INSUFFICIENT_CREDITS if there are not enough). The reservation expires after an hour; the generation then fails. Repeating a call with the same idempotencyKey returns the first generation.';

-- The caller's generation, locked, with its organization's credit account locked first (the
-- lock order of every credit operation).
create or replace function app_private.lock_member_generation(generation_id uuid) returns app_public.generations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_organization_id uuid;
  v_generation app_public.generations;
begin
  select g.organization_id into v_organization_id from app_public.generations g
  where g.id = lock_member_generation.generation_id
    and g.organization_id = any (app_public.current_user_organization_ids());
  if v_organization_id is null then
    perform app_hidden.raise_error('NOT_FOUND', 'No such generation.');
  end if;
  perform app_private.lock_credit_account(v_organization_id);
  select * into v_generation from app_public.generations g
  where g.organization_id = v_organization_id and g.id = lock_member_generation.generation_id
  for update;
  return v_generation;
end;
$$;

create or replace function app_public.complete_generation(
  generation_id uuid,
  credits numeric,
  result_metadata jsonb default null
) returns app_public.generations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_generation app_public.generations := app_private.lock_member_generation(generation_id);
  v_credits bigint;
begin
  if credits is null or credits < 0 or credits <> trunc(credits) or credits > 1000000000000 then
    perform app_hidden.raise_error('INVALID_AMOUNT', 'Credits must be a whole number from 0 to 10^12.');
  end if;
  v_credits := credits::bigint;
  if result_metadata is not null and jsonb_typeof(result_metadata) <> 'object' then
    perform app_hidden.raise_error('INVALID_METADATA', 'Metadata must be a JSON object.');
  end if;
  -- The merged metadata is what is stored and read back: bounded as a whole.
  if octet_length((coalesce(v_generation.metadata, '{}') || coalesce(result_metadata, '{}'))::text) > 16384 then
    perform app_hidden.raise_error('INVALID_METADATA', 'Metadata (with the result metadata merged in) must be at most 16 kB as JSON text.');
  end if;
  if v_generation.status = 'succeeded' and v_generation.credits_charged = v_credits then
    return v_generation; -- a repeat
  end if;
  if v_generation.status in ('succeeded', 'failed') then
    perform app_hidden.raise_error('GENERATION_ALREADY_FINISHED', format('This generation has already %s.', v_generation.status));
  end if;
  if v_credits > v_generation.credits_estimated then
    perform app_hidden.raise_error('INVALID_AMOUNT',
      format('Credits must not exceed the %s reserved when it started.', v_generation.credits_estimated));
  end if;
  if v_credits > 0 then
    perform app_private.settle_reservation(v_generation.organization_id, v_generation.reservation_id, v_credits,
      'captured', null, v_generation.id);
  else
    perform app_private.settle_reservation(v_generation.organization_id, v_generation.reservation_id, null,
      'released', null, v_generation.id);
  end if;
  update app_public.generations g
  set status = 'succeeded', credits_charged = v_credits, completed_at = now(),
      metadata = g.metadata || coalesce(result_metadata, '{}')
  where g.organization_id = v_generation.organization_id and g.id = v_generation.id
  returning * into v_generation;
  return v_generation;
end;
$$;
comment on function app_public.complete_generation(uuid, numeric, jsonb) is
  E'@resultFieldName generation\nMarks a generation succeeded and spends `credits` (at most the estimate; the rest is released). resultMetadata is merged into its metadata. RESERVATION_EXPIRED if it ran past its reservation.';

create or replace function app_public.fail_generation(
  generation_id uuid,
  error text default null
) returns app_public.generations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_generation app_public.generations := app_private.lock_member_generation(generation_id);
begin
  if length(error) > 2000 then
    perform app_hidden.raise_error('INVALID_ERROR', 'The error message must be at most 2000 characters.');
  end if;
  if v_generation.status = 'failed' then
    return v_generation; -- a repeat, or its reservation expired first
  end if;
  if v_generation.status = 'succeeded' then
    perform app_hidden.raise_error('GENERATION_ALREADY_FINISHED', 'This generation has already succeeded.');
  end if;
  perform app_private.settle_reservation(v_generation.organization_id, v_generation.reservation_id, null,
    'released', null, v_generation.id);
  update app_public.generations g
  set status = 'failed', credits_charged = 0, completed_at = now(), error = coalesce(fail_generation.error, 'Failed.')
  where g.organization_id = v_generation.organization_id and g.id = v_generation.id
  returning * into v_generation;
  return v_generation;
end;
$$;
comment on function app_public.fail_generation(uuid, text) is
  E'@resultFieldName generation\nMarks a generation failed and releases all its credits: a failed generation costs nothing.';
