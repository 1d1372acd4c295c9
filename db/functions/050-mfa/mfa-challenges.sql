-- The step between a first factor and a session. When the account has a confirmed second factor,
-- authenticate and exchangeSignInCode answer an MFA challenge instead of a session: a jwt_token
-- whose role is 'mfa_challenge', with no sub and the challenge's id as session_id. The server
-- refuses it for every operation (a token without a user is INVALID_TOKEN); only verifyMfa takes
-- it, and turns it into an aal2 session. A challenge is single use, lasts five minutes and
-- belongs to one user.
--
-- Codes are checked by the server (server/mfa/plugin.ts): the TOTP secret is encrypted with a
-- key the database never sees. The bookkeeping is here: mfa_code_attempt counts the attempt (in
-- a transaction of its own that commits) and hands over the candidate factors; accept_mfa_code
-- then marks the code used (the time step, or the recovery code) and the challenge taken, in one
-- statement each, so a code or a challenge works once even when two requests race.

create or replace trigger _100_audit_columns before insert or update on app_private.mfa_challenges
  for each row execute function app_private.tg_audit_columns();

create or replace function app_private.has_second_factor(user_id uuid) returns boolean
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select exists (select 1 from app_private.mfa_factors f
                 where f.user_id = has_second_factor.user_id and f.confirmed_at is not null);
$$;

create or replace function app_private.issue_mfa_challenge(user_id uuid, method text, identity_id uuid, sso_connection_id uuid default null)
  returns app_public.jwt_token
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_challenge app_private.mfa_challenges;
begin
  -- challenges left unanswered are cleared as new ones are made (bounded work per call)
  delete from app_private.mfa_challenges c
  where c.id in (select c2.id from app_private.mfa_challenges c2 where c2.expires_at < now() - interval '1 hour' limit 100);
  insert into app_private.mfa_challenges (user_id, method, identity_id, sso_connection_id, expires_at)
  values (issue_mfa_challenge.user_id, issue_mfa_challenge.method, issue_mfa_challenge.identity_id,
          issue_mfa_challenge.sso_connection_id, now() + interval '5 minutes')
  returning * into v_challenge;
  return ('mfa_challenge', null, v_challenge.id, extract(epoch from v_challenge.expires_at)::bigint)::app_public.jwt_token;
end;
$$;

-- The user a code is for: the challenge's (signing in) or the signed-in caller's (step-up).
create or replace function app_private.mfa_code_user(challenge_id uuid) returns uuid
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid;
begin
  if mfa_code_user.challenge_id is null then
    v_user_id := app_public.current_user_id();
    if v_user_id is null or app_public.current_session_id() is null then
      perform app_hidden.raise_error('NOT_AUTHENTICATED', 'Sign in first.');
    end if;
    return v_user_id;
  end if;
  select c.user_id into v_user_id
  from app_private.mfa_challenges c join app_public.users u on u.id = c.user_id
  where c.id = mfa_code_user.challenge_id and c.used_at is null and c.expires_at > now() and u.deleted_at is null;
  if v_user_id is null then
    perform app_hidden.raise_error('MFA_CHALLENGE_INVALID', 'This sign-in step has expired or was already used; sign in again.');
  end if;
  return v_user_id;
end;
$$;

-- Counts one code attempt (per account and per client address; TOO_MANY_ATTEMPTS over the
-- limit) and returns the account's confirmed TOTP factors for the server to check the code
-- against. Called in a transaction that commits whatever the code turns out to be.
create or replace function app_hidden.mfa_code_attempt(challenge_id uuid)
  returns table (factor_id uuid, secret_encrypted text, last_step bigint)
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid := app_private.mfa_code_user(mfa_code_attempt.challenge_id);
begin
  perform app_private.take_attempt('mfa_code', 'user', v_user_id::text);
  perform app_private.take_attempt('mfa_code', 'address', app_hidden.client_address());
  return query
  select f.id, f.totp_secret_encrypted, f.totp_last_step
  from app_private.mfa_factors f
  where f.user_id = v_user_id and f.kind = 'totp' and f.confirmed_at is not null
  order by f.created_at
  limit 10;
end;
$$;
comment on function app_hidden.mfa_code_attempt(uuid) is
  'Counts a second-factor code attempt (MFA_CHALLENGE_INVALID, TOO_MANY_ATTEMPTS) and returns the TOTP factors to check it against.';

-- The second factor was given: for a challenge, takes it (once) and opens an aal2 session; for
-- the signed-in caller (step-up), raises its session to aal2 now. TOTP: factor_id and the time
-- step the server matched, accepted only after the factor's last one (no replay). Otherwise a
-- recovery code, used once.
create or replace function app_hidden.accept_mfa_code(challenge_id uuid, factor_id uuid, time_step bigint, recovery_code text)
  returns app_public.jwt_token
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid := app_private.mfa_code_user(accept_mfa_code.challenge_id);
begin
  if accept_mfa_code.factor_id is not null then
    update app_private.mfa_factors f set totp_last_step = accept_mfa_code.time_step, last_used_at = now()
    where f.id = accept_mfa_code.factor_id and f.user_id = v_user_id and f.kind = 'totp'
      and f.confirmed_at is not null
      and (f.totp_last_step is null or f.totp_last_step < accept_mfa_code.time_step);
  else
    update app_private.mfa_recovery_codes r set used_at = now()
    where r.user_id = v_user_id and r.used_at is null
      and r.code_hash = digest(app_private.normalize_recovery_code(accept_mfa_code.recovery_code), 'sha256');
  end if;
  if not found then
    perform app_hidden.raise_error('MFA_CODE_INVALID', 'That code is not valid.');
  end if;
  return app_private.finish_second_factor(accept_mfa_code.challenge_id, v_user_id);
end;
$$;
comment on function app_hidden.accept_mfa_code(uuid, uuid, bigint, text) is
  'Records a checked second factor (TOTP step or recovery code, once each): an aal2 session for a challenge, or a step-up of the current session.';

-- After any second factor (code or passkey): the challenge's session, or the caller's step-up.
create or replace function app_private.finish_second_factor(challenge_id uuid, user_id uuid) returns app_public.jwt_token
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_challenge app_private.mfa_challenges;
  v_token app_public.jwt_token;
begin
  if finish_second_factor.challenge_id is null then
    update app_private.sessions s set aal = 'aal2', aal2_at = now()
    where s.id = app_public.current_session_id() and s.user_id = finish_second_factor.user_id;
    return null;
  end if;
  update app_private.mfa_challenges c set used_at = now()
  where c.id = finish_second_factor.challenge_id and c.user_id = finish_second_factor.user_id
    and c.used_at is null and c.expires_at > now()
  returning * into v_challenge;
  if not found then
    perform app_hidden.raise_error('MFA_CHALLENGE_INVALID', 'This sign-in step has expired or was already used; sign in again.');
  end if;
  v_token := app_private.start_session(v_challenge.user_id);
  update app_private.sessions s
  set method = v_challenge.method, identity_id = v_challenge.identity_id, sso_connection_id = v_challenge.sso_connection_id,
      aal = 'aal2', aal2_at = now()
  where s.id = v_token.session_id;
  return v_token;
end;
$$;
