-- Brute-force limits, counted in PostgreSQL so every server process shares them. Each limited
-- action is counted per email address, per client address and/or per user, in fixed windows
-- (app_private.account_settings.attempt_limits). The server calls app_hidden.count_attempt in a
-- transaction of its own, committed before the action runs (server/plugins/attempt-limits.ts):
-- a failing action rolls back its own transaction, and an attempt counted inside it would be
-- rolled back with it. Over the limit the answer is TOO_MANY_ATTEMPTS with extensions.retryAfter
-- (seconds until the window ends), before any password is looked at: a correct password does not
-- get through during a lock-out. Subjects are stored as SHA-256 hex digests, never in clear.

create or replace function app_hidden.client_address() returns text
  language sql stable parallel safe
as $$
  select nullif(current_setting('tenantbase.client_address', true), '');
$$;
comment on function app_hidden.client_address() is
  'The client''s IP address as the server saw it (X-Forwarded-For only with TRUST_PROXY), or null.';

create or replace function app_private.attempt_subject(scope text, subject text) returns text
  language sql immutable parallel safe
  set search_path = pg_catalog, public
as $$
  select encode(digest(scope || ':' || subject, 'sha256'), 'hex');
$$;

-- Counts one attempt of action by (scope, subject); raises TOO_MANY_ATTEMPTS when the window
-- already holds its maximum. Concurrent attempts queue on the counter row (upsert), so at most
-- max of them pass per window.
create or replace function app_private.take_attempt(action text, scope text, subject text) returns void
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_limit jsonb := (app_private.account_settings()).attempt_limits -> take_attempt.action -> take_attempt.scope;
  v_max int;
  v_window interval;
  v_counter app_private.attempt_counters;
begin
  if v_limit is null or take_attempt.subject is null or take_attempt.subject = '' then
    return;
  end if;
  v_max := (v_limit ->> 'max')::int;
  v_window := make_interval(secs => (v_limit ->> 'seconds')::int);
  insert into app_private.attempt_counters as c (action, scope, subject, window_started_at, attempts)
  values (take_attempt.action, take_attempt.scope, app_private.attempt_subject(take_attempt.scope, take_attempt.subject), now(), 1)
  on conflict on constraint attempt_counters_pkey do update
    set window_started_at = case when c.window_started_at + v_window <= now() then now() else c.window_started_at end,
        attempts = case when c.window_started_at + v_window <= now() then 1 else c.attempts + 1 end
  returning * into v_counter;
  if v_counter.attempts > v_max then
    -- raising rolls this count back: the counter stays at its maximum until the window ends
    perform app_hidden.raise_error_with('TOO_MANY_ATTEMPTS',
      'Too many attempts; try again later.',
      jsonb_build_object('retryAfter',
        greatest(1, ceil(extract(epoch from v_counter.window_started_at + v_window - now())))::int));
  end if;
end;
$$;

-- Forgets the attempts of action by (scope, subject): a successful sign-in clears the failures
-- counted against its email address (not those of its client address).
create or replace function app_private.clear_attempts(action text, scope text, subject text) returns void
  language sql volatile security definer
  set search_path = pg_catalog, public
as $$
  delete from app_private.attempt_counters c
  where c.action = clear_attempts.action and c.scope = clear_attempts.scope
    and c.subject = app_private.attempt_subject(clear_attempts.scope, clear_attempts.subject);
$$;

-- What the server calls before each limited mutation. subject is what the mutation was given:
-- the email address (authenticate, register, forgot_password) or the token (verify_email, whose
-- email is the token's user's, when the token is known). The client address comes from the
-- transaction's settings; per-user actions count against the signed-in user.
create or replace function app_hidden.count_attempt(action text, subject text) returns void
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_email text;
begin
  if count_attempt.action in ('authenticate', 'register', 'forgot_password') then
    v_email := left(app_hidden.normalize_email(count_attempt.subject), 320);
  elsif count_attempt.action = 'verify_email' then
    select u.email into v_email
    from app_private.account_tokens t join app_public.users u on u.id = t.user_id
    where t.token_hash = digest(coalesce(count_attempt.subject, ''), 'sha256');
  elsif count_attempt.action not in ('reset_password', 'resend_verification_email', 'change_email', 'password_check') then
    raise exception 'unknown attempt action %', count_attempt.action;
  end if;
  perform app_private.take_attempt(count_attempt.action, 'address', app_hidden.client_address());
  perform app_private.take_attempt(count_attempt.action, 'email', v_email);
  perform app_private.take_attempt(count_attempt.action, 'user', app_public.current_user_id()::text);
end;
$$;
comment on function app_hidden.count_attempt(text, text) is
  'Counts an attempt of a limited action before it runs, in its own transaction (TOO_MANY_ATTEMPTS over the limit).';

create or replace trigger _100_audit_columns before insert or update on app_private.attempt_counters
  for each row execute function app_private.tg_audit_columns();
