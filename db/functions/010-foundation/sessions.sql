-- Sessions: signing in opens one, signing out revokes it.

create or replace function app_private.start_session(user_id uuid) returns app_public.jwt_token
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_session app_private.sessions;
begin
  insert into app_private.sessions (user_id, expires_at)
  values (start_session.user_id, now() + interval '1 day')
  returning * into v_session;
  return ('app_user', v_session.user_id, v_session.id, extract(epoch from v_session.expires_at)::bigint)::app_public.jwt_token;
end;
$$;

create or replace function app_public.authenticate(email text, password text) returns app_public.jwt_token
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid;
  v_hash text;
begin
  select u.id, s.password_hash into v_user_id, v_hash
  from app_public.users u
  join app_private.user_secrets s on s.user_id = u.id
  where u.email = app_hidden.normalize_email(authenticate.email);

  -- The same work and the same answer whether or not the email exists.
  if v_hash is null then
    perform crypt(coalesce(authenticate.password, ''), gen_salt('bf', 10));
    perform app_hidden.raise_error('INVALID_CREDENTIALS', 'Incorrect email or password.');
  end if;
  if authenticate.password is null or crypt(authenticate.password, v_hash) <> v_hash then
    perform app_hidden.raise_error('INVALID_CREDENTIALS', 'Incorrect email or password.');
  end if;
  return app_private.start_session(v_user_id);
end;
$$;
comment on function app_public.authenticate(text, text) is
  E'@resultFieldName jwtToken\nSigns in with email and password.';

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
