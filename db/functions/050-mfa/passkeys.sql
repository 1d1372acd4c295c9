-- Passkeys (WebAuthn). The server makes the options and verifies the browser's answers with
-- @simplewebauthn/server (server/mfa/passkeys.ts); here: the challenges (single use, five
-- minutes, bound to the user, the relying party and the origin, and for a second factor to its
-- MFA challenge), who may register a credential, and the signature counter, moved only forward
-- by a compare-and-set so that a cloned authenticator's replayed counter is refused.
-- A passkey counts as a second factor (it is something you have, unlocked by user
-- verification, which is required), so a passwordless sign-in with one opens an aal2 session.

create or replace trigger _100_audit_columns before insert or update on app_private.passkey_challenges
  for each row execute function app_private.tg_audit_columns();

-- purpose registration: the signed-in caller (step-up when they already have a factor);
-- step_up: the signed-in caller, raising this session to aal2; second_factor: the user of the
-- MFA challenge (which must be live); sign_in: nobody yet.
-- Returns the challenge's id and the credentials it may be answered with (registration: the
-- ones to exclude).
create or replace function app_hidden.start_passkey_challenge(purpose text, challenge text, rp_id text, origin text, mfa_challenge_id uuid)
  returns table (challenge_id uuid, user_id uuid, email text, credential_ids text[])
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid;
  v_id uuid;
begin
  if start_passkey_challenge.purpose = 'registration' then
    v_user_id := app_private.mfa_code_user(null);
    perform app_hidden.assert_recent_second_factor();
    if (select count(*) from app_private.mfa_factors f where f.user_id = v_user_id and f.confirmed_at is not null) >= 10 then
      perform app_hidden.raise_error('MFA_FACTOR_LIMIT', 'An account has at most 10 second factors.');
    end if;
  elsif start_passkey_challenge.purpose = 'step_up' then
    v_user_id := app_private.mfa_code_user(null);
  elsif start_passkey_challenge.purpose = 'second_factor' then
    v_user_id := app_private.mfa_code_user(start_passkey_challenge.mfa_challenge_id);
  elsif start_passkey_challenge.purpose <> 'sign_in' then
    raise exception 'unknown passkey challenge purpose %', start_passkey_challenge.purpose;
  end if;
  -- each stored challenge is a row: per client address (RATE_LIMIT_PASSKEY_CHALLENGE_ADDRESS)
  perform app_private.take_attempt('passkey_challenge', 'address', app_hidden.client_address());
  -- challenges left unanswered are cleared as new ones are made (bounded work per call)
  delete from app_private.passkey_challenges c
  where c.id in (select c2.id from app_private.passkey_challenges c2 where c2.expires_at < now() - interval '1 hour' limit 100);
  insert into app_private.passkey_challenges (user_id, purpose, challenge, rp_id, origin, mfa_challenge_id, expires_at)
  values (v_user_id, start_passkey_challenge.purpose, start_passkey_challenge.challenge, start_passkey_challenge.rp_id,
          start_passkey_challenge.origin,
          case when start_passkey_challenge.purpose = 'second_factor' then start_passkey_challenge.mfa_challenge_id end,
          now() + interval '5 minutes')
  returning id into v_id;
  return query
  select v_id, v_user_id, (select u.email::text from app_public.users u where u.id = v_user_id),
         coalesce((select array_agg(f.passkey_credential_id order by f.created_at) from app_private.mfa_factors f
                   where f.user_id = v_user_id and f.kind = 'passkey' and f.confirmed_at is not null), '{}');
end;
$$;

-- Takes a challenge once (whatever the answer turns out to be): an answer is checked against
-- exactly one challenge, and never twice. For registration and step-up it must be the caller's.
create or replace function app_hidden.take_passkey_challenge(challenge_id uuid, purpose text)
  returns table (challenge text, rp_id text, origin text, user_id uuid, mfa_challenge_id uuid)
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_row app_private.passkey_challenges;
begin
  update app_private.passkey_challenges c set used_at = now()
  where c.id = take_passkey_challenge.challenge_id and c.purpose = take_passkey_challenge.purpose
    and c.used_at is null and c.expires_at > now()
    and (c.purpose not in ('registration', 'step_up') or c.user_id = app_public.current_user_id())
  returning * into v_row;
  if not found then
    perform app_hidden.raise_error('MFA_CHALLENGE_INVALID', 'This passkey request has expired or was already used; start again.');
  end if;
  return query select v_row.challenge, v_row.rp_id, v_row.origin, v_row.user_id, v_row.mfa_challenge_id;
end;
$$;

-- A verified registration: the caller's new passkey; this session has just used it (aal2). The
-- account's first factor comes with its recovery codes.
create or replace function app_hidden.add_passkey_factor(credential_id text, public_key bytea, counter bigint, transports text[],
                                                         device_type text, backed_up boolean, name text)
  returns table (factor_id uuid, recovery_code text)
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid := app_private.mfa_code_user(null);
  v_first boolean := not app_private.has_second_factor(v_user_id);
  v_id uuid;
begin
  if length(coalesce(add_passkey_factor.name, '')) > 100 then
    perform app_hidden.raise_error('INVALID_INPUT', 'A factor''s name is at most 100 characters.');
  end if;
  if exists (select 1 from app_private.mfa_factors f where f.passkey_credential_id = add_passkey_factor.credential_id) then
    perform app_hidden.raise_error('PASSKEY_ALREADY_REGISTERED', 'This passkey is already registered.');
  end if;
  insert into app_private.mfa_factors (user_id, kind, name, passkey_credential_id, passkey_public_key, passkey_counter,
                                       passkey_transports, passkey_device_type, passkey_backed_up, confirmed_at, last_used_at)
  values (v_user_id, 'passkey', coalesce(nullif(trim(add_passkey_factor.name), ''), 'Passkey'), add_passkey_factor.credential_id,
          add_passkey_factor.public_key, add_passkey_factor.counter, add_passkey_factor.transports[1:10],
          add_passkey_factor.device_type, add_passkey_factor.backed_up, now(), now())
  returning id into v_id;
  update app_private.sessions s set aal = 'aal2', aal2_at = now()
  where s.id = app_public.current_session_id() and s.user_id = v_user_id;
  if v_first then
    return query select v_id, c from app_private.new_recovery_codes(v_user_id) c;
  else
    return query select v_id, null::text;
  end if;
end;
$$;

-- The stored credential an assertion names (its user's account must be live).
create or replace function app_hidden.passkey_credential(credential_id text)
  returns table (factor_id uuid, user_id uuid, public_key bytea, counter bigint, transports text[])
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select f.id, f.user_id, f.passkey_public_key, f.passkey_counter, f.passkey_transports
  from app_private.mfa_factors f join app_public.users u on u.id = f.user_id
  where f.passkey_credential_id = left(passkey_credential.credential_id, 1400) and f.kind = 'passkey'
    and f.confirmed_at is not null and u.deleted_at is null;
$$;

-- A verified assertion. The counter moves forward (or both stay 0, for authenticators without
-- one); a counter that did not is a cloned authenticator: MFA_CODE_INVALID. Second factor: the
-- MFA challenge's aal2 session; sign-in: an aal2 session of the credential's user; step-up: the
-- caller's session becomes aal2 now (returns null).
create or replace function app_hidden.accept_passkey(challenge_id uuid, factor_id uuid, new_counter bigint, backed_up boolean)
  returns app_public.jwt_token
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_challenge app_private.passkey_challenges;
  v_factor app_private.mfa_factors;
  v_token app_public.jwt_token;
begin
  select * into v_challenge from app_private.passkey_challenges c where c.id = accept_passkey.challenge_id and c.used_at is not null;
  update app_private.mfa_factors f
  set passkey_counter = accept_passkey.new_counter, passkey_backed_up = accept_passkey.backed_up, last_used_at = now()
  where f.id = accept_passkey.factor_id and f.kind = 'passkey' and f.confirmed_at is not null
    and (accept_passkey.new_counter > f.passkey_counter or (accept_passkey.new_counter = 0 and f.passkey_counter = 0))
  returning * into v_factor;
  if not found or v_challenge.id is null or (v_challenge.user_id is not null and v_challenge.user_id <> v_factor.user_id) then
    perform app_hidden.raise_error('MFA_CODE_INVALID', 'That passkey is not valid here.');
  end if;
  if v_challenge.purpose = 'second_factor' then
    return app_private.finish_second_factor(v_challenge.mfa_challenge_id, v_factor.user_id);
  end if;
  if v_challenge.purpose = 'step_up' then
    -- the caller's own session (finish_second_factor checks it is the factor's user's)
    perform app_private.finish_second_factor(null, v_factor.user_id);
    return null;
  end if;
  v_token := app_private.start_session(v_factor.user_id);
  update app_private.sessions s set method = 'passkey', aal = 'aal2', aal2_at = now() where s.id = v_token.session_id;
  return v_token;
end;
$$;
