-- Forgotten passwords: forgotPassword(email) answers true whatever the address (known, unknown,
-- malformed, deleted) and mails a reset link only when an account has it, at most
-- attempt_limits.forgot_password.email.max mails per window to one address (default one per 10
-- minutes), whoever asks. Requests are limited only per asking client address
-- (attempt-limits.sql): someone else's requests never stop the owner's mail for longer than that
-- window, and the mail they caused went to the owner anyway, its link valid for an hour; resetPassword(token,
-- newPassword) sets the password, signs out every session of the account at once and returns a
-- fresh token. Using the link also proves the address (the mail reached it).

-- Whether a reset mail to this address may be queued now: at most max per window of
-- attempt_limits.forgot_password.email, counted by address (known or not: same work either way).
-- Never refuses the request: over the rate the mail is just not sent again.
create or replace function app_private.take_reset_mail_turn(email text) returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_limit jsonb := (app_private.account_settings()).attempt_limits -> 'forgot_password' -> 'email';
  v_window interval;
  v_counter app_private.attempt_counters;
begin
  if v_limit is null then
    return true;
  end if;
  v_window := make_interval(secs => (v_limit ->> 'seconds')::int);
  insert into app_private.attempt_counters as c (action, scope, subject, window_started_at, attempts)
  values ('forgot_password', 'mail', app_private.attempt_subject('mail', take_reset_mail_turn.email), now(), 1)
  on conflict on constraint attempt_counters_pkey do update
    set window_started_at = case when c.window_started_at + v_window <= now() then now() else c.window_started_at end,
        attempts = case when c.window_started_at + v_window <= now() then 1 else c.attempts + 1 end
  returning * into v_counter;
  return v_counter.attempts <= (v_limit ->> 'max')::int;
end;
$$;

create or replace function app_public.forgot_password(email text) returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_email text := left(app_hidden.normalize_email(forgot_password.email), 320);
begin
  -- The request does the same work whether or not an account has the address: it queues a mail
  -- job for the address, and the worker (app_private.issue_reset_token) finds the account or
  -- sends nothing. Looking the address up here made known addresses measurably slower (the job
  -- insert), which bench/forgot-password.ts showed.
  if v_email is not null and v_email <> '' and app_private.take_reset_mail_turn(v_email) then
    perform app_private.queue_account_email('reset_password', null, jsonb_build_object('email', v_email));
  end if;
  return true;
end;
$$;
comment on function app_public.forgot_password(text) is
  E'@resultFieldName success\nMails a password-reset link if an account has this address. The answer is the same either way.';

create or replace function app_public.reset_password(token text, new_password text) returns app_public.jwt_token
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_token app_private.account_tokens;
  v_user app_public.users;
begin
  -- a weak password is refused before the token is spent (and the whole call rolls back anyway)
  perform app_private.assert_acceptable_password(reset_password.new_password);
  v_token := app_private.use_account_token(array['reset_password'], reset_password.token);
  select * into v_user from app_public.users u where u.id = v_token.user_id for update;
  if v_user.email <> v_token.email then
    perform app_hidden.raise_error('TOKEN_INVALID', 'This link is not valid.');
  end if;
  perform app_private.set_password(v_user.id, reset_password.new_password);
  update app_private.sessions s set revoked_at = now() where s.user_id = v_user.id and s.revoked_at is null;
  perform app_private.revoke_account_tokens(v_user.id, array['reset_password']);
  update app_public.users u set email_verified_at = coalesce(u.email_verified_at, now()) where u.id = v_user.id;
  perform app_private.clear_attempts('authenticate', 'email', v_user.email::text);
  return app_private.start_session(v_user.id);
end;
$$;
comment on function app_public.reset_password(text, text) is
  E'@resultFieldName jwtToken\nSets a new password with the token from the reset mail. Every session of the account is signed out; the payload carries a fresh token.';

-- For the mail worker: the reset token for the account that has this address, or no row (unknown
-- or deleted address: nothing is sent).
create or replace function app_private.issue_reset_token(address text)
returns table (token text, email text, name text, expires_at timestamptz)
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid;
begin
  select u.id into v_user_id from app_public.users u
  where u.email = app_hidden.normalize_email(issue_reset_token.address) and u.deleted_at is null;
  if v_user_id is null then
    return;
  end if;
  return query select * from app_private.issue_account_token('reset_password', v_user_id);
end;
$$;
