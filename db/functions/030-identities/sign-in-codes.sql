-- The one-time code between a provider's callback and the app: the callback redirects the browser
-- to the app with it (never a session token in a URL), and the app exchanges it through GraphQL
-- (exchangeSignInCode) for the same jwtToken a password sign-in gives. Only its SHA-256 is kept;
-- it works once, for one minute. The session it opens records that it came from a provider, and
-- which identity.

create or replace trigger _100_audit_columns before insert or update on app_private.sign_in_codes
  for each row execute function app_private.tg_audit_columns();

create or replace function app_private.issue_sign_in_code(identity_id uuid) returns text
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_code text := rtrim(translate(encode(gen_random_bytes(32), 'base64'), '+/', '-_'), '=');
  v_user_id uuid;
begin
  select i.user_id into v_user_id from app_private.identities i where i.id = issue_sign_in_code.identity_id;
  if v_user_id is null then
    raise exception 'no identity %', issue_sign_in_code.identity_id;
  end if;
  -- codes left unexchanged are cleared as new ones are made (bounded work per call)
  delete from app_private.sign_in_codes c
  where c.id in (select c2.id from app_private.sign_in_codes c2 where c2.expires_at < now() - interval '1 hour' limit 100);
  insert into app_private.sign_in_codes (code_hash, user_id, identity_id, expires_at)
  values (digest(v_code, 'sha256'), v_user_id, issue_sign_in_code.identity_id, now() + interval '1 minute');
  return v_code;
end;
$$;

create or replace function app_public.exchange_sign_in_code(code text) returns app_public.jwt_token
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_code app_private.sign_in_codes;
  v_token app_public.jwt_token;
begin
  update app_private.sign_in_codes c set used_at = now()
  where c.code_hash = digest(left(coalesce(exchange_sign_in_code.code, ''), 200), 'sha256')
    and c.used_at is null and c.expires_at > now()
  returning * into v_code;
  if not found or not exists (select 1 from app_public.users u where u.id = v_code.user_id and u.deleted_at is null) then
    perform app_hidden.raise_error('SIGN_IN_CODE_INVALID', 'This sign-in link has expired or was already used; sign in again.');
  end if;
  -- With a second factor (050-mfa): an MFA challenge instead of a session.
  if app_private.has_second_factor(v_code.user_id) then
    return app_private.issue_mfa_challenge(v_code.user_id,
      case when v_code.sso_connection_id is null then 'provider' else 'sso' end, v_code.identity_id, v_code.sso_connection_id);
  end if;
  v_token := app_private.start_session(v_code.user_id);
  -- an SSO sign-in's session records its connection (040-organization-sso/sso-sign-in.sql)
  update app_private.sessions s
  set method = case when v_code.sso_connection_id is null then 'provider' else 'sso' end,
      identity_id = v_code.identity_id, sso_connection_id = v_code.sso_connection_id
  where s.id = v_token.session_id;
  return v_token;
end;
$$;
comment on function app_public.exchange_sign_in_code(text) is
  E'@resultFieldName jwtToken\nSigns in with the one-time code a provider sign-in handed the app (in its redirect); the same jwtToken as authenticate.';
