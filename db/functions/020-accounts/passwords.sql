-- What a password must be, how it is stored and checked, and changing it. bcrypt reads only the
-- first 72 bytes of a password, so a longer one would be checked by a prefix only (36 × 'é' is
-- already 72 bytes): passwords over 72 bytes are refused wherever one is set (register,
-- resetPassword, changePassword) and never match when signing in.

create or replace function app_private.assert_acceptable_password(password text) returns void
  language plpgsql stable
  set search_path = pg_catalog, public
as $$
begin
  if assert_acceptable_password.password is null or char_length(assert_acceptable_password.password) < 8 then
    perform app_hidden.raise_error('WEAK_PASSWORD', 'Password must be at least 8 characters.');
  end if;
  if octet_length(assert_acceptable_password.password) > 72 then
    perform app_hidden.raise_error('WEAK_PASSWORD',
      'Password must be at most 72 bytes in UTF-8 (72 plain letters, fewer accented ones).');
  end if;
end;
$$;

-- Sets (or replaces) the user's password hash, after the checks above.
create or replace function app_private.set_password(user_id uuid, password text) returns void
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  perform app_private.assert_acceptable_password(set_password.password);
  insert into app_private.user_secrets (user_id, password_hash)
  values (set_password.user_id, crypt(set_password.password, gen_salt('bf', 10)))
  on conflict on constraint user_secrets_pkey do update set password_hash = excluded.password_hash;
end;
$$;

-- Whether password is the user's. Same bcrypt work when the user has no password (unknown email,
-- deleted account), so the time does not tell them apart; a password over 72 bytes never matches.
create or replace function app_private.password_matches(user_id uuid, password text) returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_hash text;
begin
  select s.password_hash into v_hash from app_private.user_secrets s
  join app_public.users u on u.id = s.user_id
  where s.user_id = password_matches.user_id and u.deleted_at is null;
  if v_hash is null then
    perform crypt(coalesce(password_matches.password, ''), gen_salt('bf', 10));
    return false;
  end if;
  return password_matches.password is not null
     and octet_length(password_matches.password) <= 72
     and crypt(password_matches.password, v_hash) = v_hash;
end;
$$;

-- The signed-in user's current password, required by changePassword, changeEmail and
-- deleteAccount: WRONG_PASSWORD otherwise.
create or replace function app_private.assert_current_password(password text) returns uuid
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid := app_public.current_user_id();
begin
  if v_user_id is null then
    perform app_hidden.raise_error('NOT_AUTHENTICATED', 'Sign in first.');
  end if;
  if not app_private.password_matches(v_user_id, assert_current_password.password) then
    perform app_hidden.raise_error('WRONG_PASSWORD', 'The current password is not correct.');
  end if;
  return v_user_id;
end;
$$;

create or replace function app_public.change_password(current_password text, new_password text) returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid := app_private.assert_current_password(change_password.current_password);
begin
  perform app_hidden.assert_recent_second_factor(); -- step-up (050-mfa/step-up.sql)
  perform app_private.set_password(v_user_id, change_password.new_password);
  -- every other session ends; this one is kept
  update app_private.sessions s set revoked_at = now()
  where s.user_id = v_user_id and s.revoked_at is null and s.id is distinct from app_public.current_session_id();
  perform app_private.revoke_account_tokens(v_user_id, array['reset_password']);
  return true;
end;
$$;
comment on function app_public.change_password(text, text) is
  E'@resultFieldName success\nChanges the password (the current one is required: WRONG_PASSWORD). Every other session is signed out; this one stays.';
