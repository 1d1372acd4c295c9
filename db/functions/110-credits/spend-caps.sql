-- Spend caps, the admin's side: set and remove them, what each has used this period, and a
-- revoked API key's caps going with it. Enforced at reserve (spend-cap-charges.sql).

-- The UTC day, ISO week (from Monday) or calendar month a moment falls in, whatever the
-- session's TimeZone.
create or replace function app_hidden.spend_cap_window_start(period app_public.credit_spend_cap_period, at timestamptz)
returns timestamptz
  language sql immutable strict parallel safe
as $$
  select date_trunc(period::text, at at time zone 'UTC') at time zone 'UTC';
$$;

create or replace function app_hidden.spend_cap_window_end(period app_public.credit_spend_cap_period, window_start timestamptz)
returns timestamptz
  language sql immutable strict parallel safe
as $$
  select ((window_start at time zone 'UTC') + case period when 'day' then interval '1 day'
    when 'week' then interval '7 days' else interval '1 month' end) at time zone 'UTC';
$$;

-- The period a cap counts in now: the current one, or a later one a concurrent reservation
-- already moved it to (never back).
create or replace function app_hidden.spend_cap_current_window(cap app_public.credit_spend_caps)
returns timestamptz
  language sql stable
as $$
  select greatest(app_hidden.spend_cap_window_start((cap).period, now()), (cap).window_start);
$$;

-- Credits reserved against the cap in its current period (open reservations and captures; what
-- was released does not count).
create or replace function app_public.credit_spend_caps_spent(cap app_public.credit_spend_caps) returns bigint
  language sql stable
as $$
  select case when (cap).window_start >= app_hidden.spend_cap_window_start((cap).period, now())
    then (cap).window_spent else 0 end;
$$;
comment on function app_public.credit_spend_caps_spent(app_public.credit_spend_caps) is
  'Credits reserved against this cap in the current period (open and captured; releases give back).';

-- When the current period ends and spent starts again from 0.
create or replace function app_public.credit_spend_caps_resets_at(cap app_public.credit_spend_caps) returns timestamptz
  language sql stable
as $$
  select app_hidden.spend_cap_window_end((cap).period, app_hidden.spend_cap_current_window(cap));
$$;
comment on function app_public.credit_spend_caps_resets_at(app_public.credit_spend_caps) is
  'The end of the current period (UTC), when spent starts again from 0.';

-- How many caps one organization may have (each is a row every reservation of its scope reads).
create or replace function app_hidden.max_spend_caps_per_organization() returns int
  language sql immutable parallel safe
as $$
  select 50;
$$;

-- Sets the cap of a target (the organization; a project; an API key) for a period: at most
-- max_credits reserved per UTC day, ISO week or calendar month, and, if given, at most
-- max_per_reservation in one reservation. Setting it again changes the limits and keeps what the
-- current period has used. For operators and set_spend_cap (which checks the caller first).
create or replace function app_private.set_spend_cap(
  organization_id uuid,
  period app_public.credit_spend_cap_period,
  max_credits bigint,
  project_id uuid,
  api_key_id uuid,
  max_per_reservation bigint
) returns app_public.credit_spend_caps
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_scope app_public.credit_spend_cap_scope;
  v_cap app_public.credit_spend_caps;
begin
  if period is null then
    perform app_hidden.raise_error('INVALID_ARGUMENTS', 'A spend cap needs a period: day, week or month.');
  end if;
  if max_credits is null or max_credits not between 1 and 1000000000000
     or (max_per_reservation is not null and max_per_reservation not between 1 and 1000000000000) then
    perform app_hidden.raise_error('INVALID_AMOUNT', 'Amount must be a whole number of credits from 1 to 10^12.');
  end if;
  if max_per_reservation > max_credits then
    perform app_hidden.raise_error('INVALID_AMOUNT', 'maxPerReservation cannot be more than maxCredits.');
  end if;
  if project_id is not null and api_key_id is not null then
    perform app_hidden.raise_error('INVALID_ARGUMENTS', 'A spend cap is on the organization, one project or one API key: give projectId or apiKeyId, not both.');
  elsif project_id is not null then
    v_scope := 'project';
    if not exists (select 1 from app_public.projects p
                   where p.organization_id = set_spend_cap.organization_id and p.id = set_spend_cap.project_id
                     and p.deleted_at is null) then
      perform app_hidden.raise_error('NOT_FOUND', 'No such project.');
    end if;
  elsif api_key_id is not null then
    v_scope := 'api_key';
    if not exists (select 1 from app_public.api_keys k
                   where k.organization_id = set_spend_cap.organization_id and k.id = set_spend_cap.api_key_id
                     and k.revoked_at is null) then
      perform app_hidden.raise_error('NOT_FOUND', 'No such API key.');
    end if;
  else
    v_scope := 'organization';
  end if;

  -- The account lock orders this with the organization's reservations and other cap changes.
  perform app_private.lock_credit_account(organization_id);
  update app_public.credit_spend_caps c
  set max_credits = set_spend_cap.max_credits, max_per_reservation = set_spend_cap.max_per_reservation
  where c.organization_id = set_spend_cap.organization_id and c.scope = v_scope and c.period = set_spend_cap.period
    and c.project_id is not distinct from set_spend_cap.project_id and c.api_key_id is not distinct from set_spend_cap.api_key_id
  returning * into v_cap;
  if not found then
    if (select count(*) from app_public.credit_spend_caps c where c.organization_id = set_spend_cap.organization_id)
       >= app_hidden.max_spend_caps_per_organization() then
      perform app_hidden.raise_error('SPEND_CAP_LIMIT_REACHED',
        format('An organization can have at most %s spend caps; remove one first.', app_hidden.max_spend_caps_per_organization()));
    end if;
    insert into app_public.credit_spend_caps (organization_id, scope, project_id, api_key_id, period, max_credits, max_per_reservation)
    values (organization_id, v_scope, project_id, api_key_id, period, max_credits, max_per_reservation)
    returning * into v_cap;
  end if;
  return v_cap;
end;
$$;

-- setSpendCap: admins and owners (FORBIDDEN for members, NOT_FOUND for anyone else).
create or replace function app_public.set_spend_cap(
  organization_id uuid,
  period app_public.credit_spend_cap_period,
  max_credits numeric,
  project_id uuid default null,
  api_key_id uuid default null,
  max_per_reservation numeric default null
) returns app_public.credit_spend_caps
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  perform app_private.assert_member(organization_id);
  if not organization_id = any (app_public.current_user_organization_ids('admin')) then
    perform app_hidden.raise_error('FORBIDDEN', 'Only admins and owners can change spend caps.');
  end if;
  return app_private.set_spend_cap(organization_id, period, app_hidden.assert_valid_amount(max_credits), project_id, api_key_id,
    case when max_per_reservation is not null then app_hidden.assert_valid_amount(max_per_reservation) end);
end;
$$;
comment on function app_public.set_spend_cap(uuid, app_public.credit_spend_cap_period, numeric, uuid, uuid, numeric) is
  E'@resultFieldName creditSpendCap\nCaps the credits reserved per UTC day, ISO week or calendar month for the organization, a project (projectId) or an API key (apiKeyId), and optionally per reservation (admins and owners). Setting it again for the same target and period changes it. Reservations past a cap are refused with SPEND_CAP_REACHED.';

-- Removes a cap (admins and owners). NOT_FOUND for another tenant's.
create or replace function app_public.remove_spend_cap(id uuid) returns app_public.credit_spend_caps
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_cap app_public.credit_spend_caps;
begin
  select * into v_cap from app_public.credit_spend_caps c
  where c.id = remove_spend_cap.id and c.organization_id = any (app_public.current_user_organization_ids());
  if not found then
    perform app_hidden.raise_error('NOT_FOUND', 'No such spend cap.');
  end if;
  if not v_cap.organization_id = any (app_public.current_user_organization_ids('admin')) then
    perform app_hidden.raise_error('FORBIDDEN', 'Only admins and owners can change spend caps.');
  end if;
  perform app_private.lock_credit_account(v_cap.organization_id);
  delete from app_public.credit_spend_caps c
  where c.organization_id = v_cap.organization_id and c.id = v_cap.id
  returning * into v_cap;
  return v_cap;
end;
$$;
comment on function app_public.remove_spend_cap(uuid) is
  E'@resultFieldName creditSpendCap\nRemoves a spend cap (admins and owners).';

-- A revoked key's caps go with it (a deleted key's by the foreign key's cascade).
create or replace function app_private.tg_api_keys_remove_spend_caps() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  delete from app_public.credit_spend_caps c
  where c.organization_id = new.organization_id and c.api_key_id = new.id;
  return null;
end;
$$;

create or replace trigger _210_remove_spend_caps after update of revoked_at on app_public.api_keys
  for each row when (new.revoked_at is not null and old.revoked_at is null)
  execute function app_private.tg_api_keys_remove_spend_caps();

create or replace trigger _100_audit_columns before insert or update on app_public.credit_spend_caps
  for each row execute function app_private.tg_audit_columns();
