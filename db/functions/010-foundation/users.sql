-- Accounts: registration and the normal form of an email address.

create or replace function app_hidden.normalize_email(email text) returns text
  language sql immutable parallel safe
as $$
  select lower(btrim(email));
$$;

create or replace function app_public.register(email text, password text, name text) returns app_public.jwt_token
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_email text := app_hidden.normalize_email(register.email);
  v_name text := btrim(register.name);
  v_user_id uuid;
begin
  if v_email is null or length(v_email) > 254 or v_email !~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$' then
    perform app_hidden.raise_error('INVALID_EMAIL', 'That is not a valid email address.');
  end if;
  if register.password is null or length(register.password) < 8 then
    perform app_hidden.raise_error('WEAK_PASSWORD', 'Password must be at least 8 characters.');
  end if;
  if length(register.password) > 72 then
    -- bcrypt ignores everything after 72 bytes; refuse rather than silently truncate
    perform app_hidden.raise_error('WEAK_PASSWORD', 'Password must be at most 72 characters.');
  end if;
  if v_name is null or length(v_name) = 0 or length(v_name) > 100 then
    perform app_hidden.raise_error('INVALID_NAME', 'Name must be 1 to 100 characters.');
  end if;
  begin
    insert into app_public.users (email, name) values (v_email, v_name) returning id into v_user_id;
  exception when unique_violation then
    perform app_hidden.raise_error('EMAIL_TAKEN', 'An account with that email already exists.');
  end;
  insert into app_private.user_secrets (user_id, password_hash)
  values (v_user_id, crypt(register.password, gen_salt('bf', 10)));
  return app_private.start_session(v_user_id);
end;
$$;
comment on function app_public.register(text, text, text) is
  E'@resultFieldName jwtToken\nCreates an account and signs it in; the payload''s jwtToken goes in the Authorization header.';
