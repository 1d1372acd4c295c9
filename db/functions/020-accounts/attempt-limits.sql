-- Brute-force limits, counted in PostgreSQL so every server process shares them, shaped so that
-- nobody can use them to lock an owner out of their own account (issue 25, A2: ten wrong
-- passwords from anywhere used to refuse the owner's right one for 15 minutes). Settings:
-- app_private.account_settings.attempt_limits, {"<action>": {"<scope>": {"max": n, "seconds": s}}},
-- fixed windows per (action, scope, subject). Subjects are SHA-256 hex digests, never in clear.
--
-- Hard limits (TOO_MANY_ATTEMPTS with retryAfter = seconds until the window ends, before any
-- password is looked at) count only what the caller controls:
--   address - the client address, across accounts;
--   pair    - the client address with the email address it names (authenticate, register);
--   user    - the signed-in user (changePassword, changeEmail, deleteAccount, resends).
-- The account alone (authenticate's "email" scope) is never locked, only slowed down: after max
-- attempts in its window, attempts take turns, one per delay (1 s, doubling per attempt, at most
-- maxDelay s, default 30), in arrival order per client address: a caller told to wait
-- (TOO_MANY_ATTEMPTS, retryAfter of its turn) holds its turn for 60 s, and one address holds one
-- turn at a time. So a guesser spread over many addresses still gets at most max + one attempt
-- per maxDelay per window on one account, while the owner's turn comes after at most one turn per
-- attacking address. An address that signed in to the account in the last 30 days (known) is not
-- slowed down at all. forgotPassword's "email" scope is not a limit on requests but the rate of
-- reset mails to one address (password-reset.sql).
--
-- The server (server/plugins/attempt-limits.ts) calls app_hidden.check_attempt before each
-- limited mutation, in a transaction of its own that commits: the mutation's own transaction
-- rolls back when it fails, and an attempt counted inside it would be rolled back with it.

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

-- Forgets the attempts of action by (scope, subject) (resetPassword forgets its account's
-- slow-down: the owner proved the mailbox).
create or replace function app_private.clear_attempts(action text, scope text, subject text) returns void
  language sql volatile security definer
  set search_path = pg_catalog, public
as $$
  delete from app_private.attempt_counters c
  where c.action = clear_attempts.action and c.scope = clear_attempts.scope
    and c.subject = app_private.attempt_subject(clear_attempts.scope, clear_attempts.subject);
$$;

-- What "this client address with this account" is called in the counters.
create or replace function app_private.attempt_pair(address text, email text) returns text
  language sql immutable parallel safe
as $$
  select case when address is not null and email is not null and email <> '' then address || ' ' || email end;
$$;

-- How long an address that signed in to an account is remembered (not slowed down).
create or replace function app_hidden.known_address_lifetime() returns interval
  language sql immutable parallel safe
as $$
  select interval '30 days';
$$;

-- A successful sign-in (authenticate, 010-foundation/sessions.sql): the client address is
-- remembered for this account, and its failures on this account are forgotten. The account's own
-- slow-down is left to run out: the owner signing in must not hand a guesser new free attempts.
create or replace function app_private.note_sign_in(email text) returns void
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_pair text := app_private.attempt_pair(app_hidden.client_address(), left(app_hidden.normalize_email(note_sign_in.email), 320));
begin
  if v_pair is null then
    return;
  end if;
  perform app_private.clear_attempts('authenticate', 'pair', v_pair);
  delete from app_private.attempt_counters c
  where c.action = 'authenticate' and c.scope = 'ticket' and c.subject = app_private.attempt_subject('ticket', v_pair);
  insert into app_private.attempt_counters as c (action, scope, subject, window_started_at, attempts)
  values ('authenticate', 'known', app_private.attempt_subject('known', v_pair), now(), 1)
  on conflict on constraint attempt_counters_pkey do update set window_started_at = now(), attempts = c.attempts + 1;
end;
$$;

-- The account's slow-down (scope 'email' of a paced action): the first max attempts of a window
-- pass; after that attempts take turns (see the top of this file). Returns 0 when this attempt may
-- run now, or the seconds until this address's turn (kept for it). Each attempt run and each turn
-- given is counted on the account. Concurrent attempts queue on the account's row.
create or replace function app_private.pace_attempt(action text, email text, address text) returns int
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_limit jsonb := (app_private.account_settings()).attempt_limits -> pace_attempt.action -> 'email';
  v_window interval;
  v_max int;
  v_delay interval;
  v_account app_private.attempt_counters;
  v_pair text := app_private.attempt_pair(pace_attempt.address, pace_attempt.email);
  v_ticket_subject text;
  v_turn timestamptz;
  v_grace constant interval := interval '60 seconds';
begin
  if v_limit is null or pace_attempt.email is null or pace_attempt.email = '' then
    return 0;
  end if;
  v_max := (v_limit ->> 'max')::int;
  v_window := make_interval(secs => (v_limit ->> 'seconds')::int);
  -- the account's row, locked, its window restarted if it ended
  insert into app_private.attempt_counters as c (action, scope, subject, window_started_at, attempts)
  values (pace_attempt.action, 'email', app_private.attempt_subject('email', pace_attempt.email), now(), 0)
  on conflict on constraint attempt_counters_pkey do update
    set window_started_at = case when c.window_started_at + v_window <= now() then now() else c.window_started_at end,
        attempts = case when c.window_started_at + v_window <= now() then 0 else c.attempts end,
        next_turn_at = case when c.window_started_at + v_window <= now() then null else c.next_turn_at end
  returning * into v_account;
  if v_account.attempts < v_max then
    update app_private.attempt_counters c set attempts = c.attempts + 1
    where c.action = v_account.action and c.scope = 'email' and c.subject = v_account.subject;
    return 0;
  end if;

  -- Slowed down. This address's turn, if it holds one:
  if v_pair is not null then
    v_ticket_subject := app_private.attempt_subject('ticket', v_pair);
    select c.window_started_at into v_turn from app_private.attempt_counters c
    where c.action = pace_attempt.action and c.scope = 'ticket' and c.subject = v_ticket_subject;
    if v_turn is not null and v_turn > now() then
      return greatest(1, ceil(extract(epoch from v_turn - now())))::int;
    end if;
    delete from app_private.attempt_counters c
    where c.action = pace_attempt.action and c.scope = 'ticket' and c.subject = v_ticket_subject;
    if v_turn is not null and v_turn > now() - v_grace then
      -- its turn has come: this attempt runs (it was counted when the turn was given)
      return 0;
    end if;
  end if;
  -- A new turn at the end of the queue, one delay after the last one.
  v_delay := make_interval(secs => least(coalesce((v_limit ->> 'maxDelay')::int, 30),
                                         power(2, least(v_account.attempts - v_max, 16))::int));
  v_turn := greatest(now(), coalesce(v_account.next_turn_at, now()));
  if v_pair is null and v_turn > now() then
    -- no address to hold a turn for: wait for the queue, and do not lengthen it
    return greatest(1, ceil(extract(epoch from v_turn - now())))::int;
  end if;
  -- Each turn given counts as an attempt, so the delay doubles per turn, not per turn used.
  update app_private.attempt_counters c
  set next_turn_at = v_turn + v_delay, attempts = c.attempts + 1
  where c.action = v_account.action and c.scope = 'email' and c.subject = v_account.subject;
  if v_turn <= now() then
    return 0;
  end if;
  if v_pair is not null then
    insert into app_private.attempt_counters (action, scope, subject, window_started_at, attempts)
    values (pace_attempt.action, 'ticket', v_ticket_subject, v_turn, 1);
  end if;
  return greatest(1, ceil(extract(epoch from v_turn - now())))::int;
end;
$$;

-- What the server calls before each limited mutation (server/plugins/attempt-limits.ts), in a
-- transaction of its own that it commits. subject is what the mutation was given: the email
-- address (authenticate, register, forgot_password) or the token (verify_email, whose email is the
-- token's user's, when the token is known). The client address comes from the transaction's
-- settings; per-user actions count against the signed-in user. Raises TOO_MANY_ATTEMPTS over a
-- hard limit (nothing is counted then); returns 0 when the mutation may run, or, for an account
-- being slowed down, the seconds until this caller's turn (its turn is kept: commit, then refuse
-- with app_hidden.refuse_attempt).
create or replace function app_hidden.check_attempt(action text, subject text) returns int
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_email text;
  v_address text := app_hidden.client_address();
  v_pair text;
begin
  if check_attempt.action in ('authenticate', 'register', 'forgot_password') then
    v_email := left(app_hidden.normalize_email(check_attempt.subject), 320);
  elsif check_attempt.action = 'verify_email' then
    select u.email into v_email
    from app_private.account_tokens t join app_public.users u on u.id = t.user_id
    where t.token_hash = digest(coalesce(check_attempt.subject, ''), 'sha256');
  elsif check_attempt.action not in ('reset_password', 'resend_verification_email', 'change_email', 'password_check') then
    raise exception 'unknown attempt action %', check_attempt.action;
  end if;
  v_pair := app_private.attempt_pair(v_address, v_email);
  perform app_private.take_attempt(check_attempt.action, 'address', v_address);
  perform app_private.take_attempt(check_attempt.action, 'pair', v_pair);
  perform app_private.take_attempt(check_attempt.action, 'user', app_public.current_user_id()::text);
  if check_attempt.action = 'forgot_password' then
    -- its "email" scope is the reset-mail rate, applied when the mail is queued
    return 0;
  end if;
  if check_attempt.action = 'authenticate' then
    if v_pair is not null and exists (
      select 1 from app_private.attempt_counters c
      where c.action = 'authenticate' and c.scope = 'known' and c.subject = app_private.attempt_subject('known', v_pair)
        and c.window_started_at > now() - app_hidden.known_address_lifetime()) then
      return 0;
    end if;
    return app_private.pace_attempt('authenticate', v_email, v_address);
  end if;
  perform app_private.take_attempt(check_attempt.action, 'email', v_email);
  return 0;
end;
$$;
comment on function app_hidden.check_attempt(text, text) is
  'Counts an attempt of a limited action before it runs, in its own transaction: TOO_MANY_ATTEMPTS over a hard limit; 0, or the seconds to wait for a slowed-down account.';

-- The refusal of an attempt check_attempt asked to wait (a separate statement, after the commit
-- that kept the caller's turn).
create or replace function app_hidden.refuse_attempt(retry_after int) returns void
  language plpgsql volatile
  set search_path = pg_catalog, public
as $$
begin
  perform app_hidden.raise_error_with('TOO_MANY_ATTEMPTS',
    'Too many attempts on this account; try again in a few seconds.',
    jsonb_build_object('retryAfter', greatest(1, refuse_attempt.retry_after)));
end;
$$;

-- The previous entry point, kept for servers of the previous release during a rolling deploy
-- (they call it and do not commit a turn): check_attempt, refusing at once.
create or replace function app_hidden.count_attempt(action text, subject text) returns void
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_wait int := app_hidden.check_attempt(count_attempt.action, count_attempt.subject);
begin
  if v_wait > 0 then
    perform app_hidden.refuse_attempt(v_wait);
  end if;
end;
$$;
comment on function app_hidden.count_attempt(text, text) is
  'Previous entry point of the attempt limits (check_attempt, refusing at once); kept for one release.';

create or replace trigger _100_audit_columns before insert or update on app_private.attempt_counters
  for each row execute function app_private.tg_audit_columns();
