-- Accounts: registration and the normal form of an email address. Registering mails a
-- verification link (020-accounts/email-verification.sql); attempts are limited per email and
-- per client address before this runs (020-accounts/attempt-limits.sql).

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
  perform app_private.assert_acceptable_password(register.password);
  if v_name is null or length(v_name) = 0 or length(v_name) > 100 then
    perform app_hidden.raise_error('INVALID_NAME', 'Name must be 1 to 100 characters.');
  end if;
  begin
    insert into app_public.users (email, name) values (v_email, v_name) returning id into v_user_id;
  exception when unique_violation then
    perform app_hidden.raise_error('EMAIL_TAKEN', 'An account with that email already exists.');
  end;
  perform app_private.set_password(v_user_id, register.password);
  perform app_private.queue_account_email('verify_email', v_user_id);
  return app_private.start_session(v_user_id);
end;
$$;
comment on function app_public.register(text, text, text) is
  E'@resultFieldName jwtToken\nCreates an account and signs it in; the payload''s jwtToken goes in the Authorization header.';

-- A user's name, however it is set (register, or updateUser renaming oneself), is a display name
-- (names.sql): trimmed of spaces and invisible characters, 1 to 100 characters.
create or replace function app_private.tg_users_validate() returns trigger
  language plpgsql volatile
  set search_path = pg_catalog, public
as $$
begin
  new.name := app_hidden.clean_name(new.name, 'Name');
  return new;
end;
$$;

create or replace trigger _010_validate before insert or update of name on app_public.users
  for each row execute function app_private.tg_users_validate();
