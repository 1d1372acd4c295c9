-- Sessions: signing in opens one, signing out revokes it; each user lists their sessions and ends
-- any of them. A session ends at its absolute expiry (account_settings.session_lifetime, the
-- token's exp) or after account_settings.session_idle_timeout without a request
-- (SESSION_IDLE_TIMEOUT_SECONDS); the view app_private.live_sessions (caller.sql) decides both.

create or replace function app_private.start_session(user_id uuid) returns app_public.jwt_token
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_session app_private.sessions;
begin
  insert into app_private.sessions (user_id, expires_at, user_agent)
  values (start_session.user_id, now() + (app_private.account_settings()).session_lifetime,
          left(nullif(current_setting('tenantbase.user_agent', true), ''), 512))
  returning * into v_session;
  return ('app_user', v_session.user_id, v_session.id, extract(epoch from v_session.expires_at)::bigint)::app_public.jwt_token;
end;
$$;

-- Attempts are limited per client address and per (address, account), and slowed down per account,
-- before this runs (020-accounts/attempt-limits.sql); a successful sign-in forgets its address's
-- failures on the account and remembers the address as known to it (never slowed down).
create or replace function app_public.authenticate(email text, password text) returns app_public.jwt_token
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid;
begin
  select u.id into v_user_id
  from app_public.users u
  where u.email = left(coalesce(app_hidden.normalize_email(authenticate.email), ''), 320) and u.deleted_at is null;

  -- The same work and the same answer whether or not the email exists (password_matches runs
  -- bcrypt either way).
  if not app_private.password_matches(v_user_id, authenticate.password) then
    perform app_hidden.raise_error('INVALID_CREDENTIALS', 'Incorrect email or password.');
  end if;
  perform app_private.note_sign_in(authenticate.email);
  -- With a second factor (050-mfa): an MFA challenge instead of a session (verifyMfa opens it).
  if app_private.has_second_factor(v_user_id) then
    return app_private.issue_mfa_challenge(v_user_id, 'password', null);
  end if;
  return app_private.start_session(v_user_id);
end;
$$;
comment on function app_public.authenticate(text, text) is
  E'@resultFieldName jwtToken\nSigns in with email and password. For an account with a second factor the token is an MFA challenge (its role claim is mfa_challenge): give it to verifyMfa with a code.';

create or replace function app_public.logout() returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  update app_private.sessions
  set revoked_at = now()
  where id = app_public.current_session_id() and revoked_at is null;
  return found;
end;
$$;
comment on function app_public.logout() is E'@resultFieldName success\nRevokes the current session: its token stops working at once.';

-- What mySessions shows: the caller's live sessions, newest first, the current one marked.
create or replace function app_public.my_sessions() returns setof app_public.user_session
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
declare
  v_settings app_private.account_settings := app_private.account_settings();
begin
  return query
  select s.id, s.created_at, s.last_used_at, s.user_agent, s.id = app_public.current_session_id(), s.aal, s.method
  from app_private.sessions s
  where s.user_id = app_public.current_user_id()
    and s.revoked_at is null
    and s.expires_at > now()
    and s.last_used_at > now() - v_settings.session_idle_timeout
  order by s.created_at desc, s.id desc
  limit 1000;
end;
$$;
comment on function app_public.my_sessions() is
  E'@behavior -connection +list\n@listSuffix omit\nYour signed-in sessions (devices), newest first; `current` marks the one making this request, `method` how it was made (password, provider, sso, passkey).';

create or replace function app_public.revoke_session(id uuid) returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  if app_public.current_user_id() is null then
    perform app_hidden.raise_error('NOT_AUTHENTICATED', 'Sign in first.');
  end if;
  update app_private.sessions s set revoked_at = now()
  where s.id = revoke_session.id and s.user_id = app_public.current_user_id() and s.revoked_at is null;
  if not found then
    perform app_hidden.raise_error('NOT_FOUND', 'No such session.');
  end if;
  return true;
end;
$$;
comment on function app_public.revoke_session(uuid) is
  E'@resultFieldName success\nSigns out one of your sessions (its token stops working at once); NOT_FOUND for anyone else''s.';

create or replace function app_public.revoke_other_sessions() returns integer
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_count integer;
begin
  if app_public.current_user_id() is null then
    perform app_hidden.raise_error('NOT_AUTHENTICATED', 'Sign in first.');
  end if;
  update app_private.sessions s set revoked_at = now()
  where s.user_id = app_public.current_user_id() and s.revoked_at is null
    and s.id is distinct from app_public.current_session_id();
  get diagnostics v_count = row_count;
  return v_count;
end;
$$;
comment on function app_public.revoke_other_sessions() is
  E'@resultFieldName revokedCount\nSigns out every other session of yours; returns how many.';
