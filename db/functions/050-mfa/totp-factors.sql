-- TOTP factors (RFC 6238, 30-second steps, 6 digits). The server makes the secret and encrypts
-- it (AES-256-GCM, MFA_SECRET_KEY) before it reaches the database, and checks codes
-- (server/mfa/plugin.ts); here: who may add and confirm one, and the last accepted time step.
-- enrollTotp adds an unconfirmed factor (at most one waiting per account; a new enrolment
-- replaces it); confirmTotp's first code confirms it.

create or replace trigger _100_audit_columns before insert or update on app_private.mfa_factors
  for each row execute function app_private.tg_audit_columns();

-- Adds the caller's TOTP factor, unconfirmed; returns its id and the label for the otpauth URI.
-- An account that already has a second factor needs it in the last 15 minutes.
create or replace function app_hidden.add_totp_factor(secret_encrypted text, name text)
  returns table (factor_id uuid, email text)
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid := app_public.current_user_id();
  v_id uuid;
begin
  if v_user_id is null or app_public.current_session_id() is null then
    perform app_hidden.raise_error('NOT_AUTHENTICATED', 'Sign in first.');
  end if;
  perform app_hidden.assert_recent_second_factor();
  if length(coalesce(add_totp_factor.name, '')) > 100 then
    perform app_hidden.raise_error('INVALID_INPUT', 'A factor''s name is at most 100 characters.');
  end if;
  if (select count(*) from app_private.mfa_factors f where f.user_id = v_user_id and f.confirmed_at is not null) >= 10 then
    perform app_hidden.raise_error('MFA_FACTOR_LIMIT', 'An account has at most 10 second factors.');
  end if;
  delete from app_private.mfa_factors f where f.user_id = v_user_id and f.kind = 'totp' and f.confirmed_at is null;
  insert into app_private.mfa_factors (user_id, kind, name, totp_secret_encrypted)
  values (v_user_id, 'totp', coalesce(nullif(trim(add_totp_factor.name), ''), 'Authenticator app'), add_totp_factor.secret_encrypted)
  returning id into v_id;
  return query select v_id, u.email::text from app_public.users u where u.id = v_user_id;
end;
$$;

-- Counts a confirmation attempt like any code and returns the unconfirmed factor's secret.
create or replace function app_hidden.totp_confirmation_attempt(factor_id uuid) returns text
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid := app_private.mfa_code_user(null);
  v_secret text;
begin
  perform app_private.take_attempt('mfa_code', 'user', v_user_id::text);
  perform app_private.take_attempt('mfa_code', 'address', app_hidden.client_address());
  select f.totp_secret_encrypted into v_secret from app_private.mfa_factors f
  where f.id = totp_confirmation_attempt.factor_id and f.user_id = v_user_id and f.kind = 'totp' and f.confirmed_at is null;
  if v_secret is null then
    perform app_hidden.raise_error('NOT_FOUND', 'No such factor waiting for confirmation.');
  end if;
  return v_secret;
end;
$$;

-- The code matched: the factor counts from now on, and the caller's session, having just given
-- it, is aal2. The first factor of an account comes with its ten recovery codes (returned once);
-- later ones return none.
create or replace function app_hidden.confirm_totp_factor(factor_id uuid, time_step bigint) returns setof text
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid := app_private.mfa_code_user(null);
  v_first boolean := not app_private.has_second_factor(v_user_id);
begin
  update app_private.mfa_factors f
  set confirmed_at = now(), totp_last_step = confirm_totp_factor.time_step, last_used_at = now()
  where f.id = confirm_totp_factor.factor_id and f.user_id = v_user_id and f.kind = 'totp' and f.confirmed_at is null;
  if not found then
    perform app_hidden.raise_error('NOT_FOUND', 'No such factor waiting for confirmation.');
  end if;
  update app_private.sessions s set aal = 'aal2', aal2_at = now()
  where s.id = app_public.current_session_id() and s.user_id = v_user_id;
  if v_first then
    return query select app_private.new_recovery_codes(v_user_id);
  end if;
end;
$$;
