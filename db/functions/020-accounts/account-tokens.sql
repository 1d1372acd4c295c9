-- One-time tokens mailed to a user (email verification, password reset, email change): 256
-- random bits, kept only as their SHA-256, single use, expiring (lifetimes in account_settings).
-- The worker issues a token just before it sends the mail that carries it, so the token itself
-- is never stored anywhere, not even in a job's payload. A newer token of the same purpose
-- replaces the older ones. Refusals, each with its own code: TOKEN_INVALID (malformed, unknown,
-- replaced, or meant for something else), TOKEN_USED, TOKEN_EXPIRED, TOKEN_USER_MISMATCH (signed
-- in as someone other than the token's user).

create or replace function app_private.issue_account_token(purpose text, user_id uuid, new_email text default null)
returns table (token text, email text, name text, expires_at timestamptz)
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user app_public.users;
  v_settings app_private.account_settings := app_private.account_settings();
  v_token text := encode(gen_random_bytes(32), 'hex');
  v_email text;
  v_ttl interval;
begin
  select * into v_user from app_public.users u where u.id = issue_account_token.user_id and u.deleted_at is null;
  if not found then
    return;
  end if;
  if issue_account_token.purpose = 'verify_email' then
    if v_user.email_verified_at is not null then
      return; -- nothing left to prove
    end if;
    v_email := v_user.email;
    v_ttl := v_settings.verification_token_ttl;
  elsif issue_account_token.purpose = 'reset_password' then
    v_email := v_user.email;
    v_ttl := v_settings.reset_token_ttl;
  elsif issue_account_token.purpose = 'change_email' then
    v_email := app_hidden.normalize_email(issue_account_token.new_email);
    if v_email is null or v_email = v_user.email::text then
      return;
    end if;
    v_ttl := v_settings.email_change_token_ttl;
  else
    raise exception 'unknown token purpose %', issue_account_token.purpose;
  end if;
  update app_private.account_tokens t set revoked_at = now()
  where t.user_id = v_user.id and t.purpose = issue_account_token.purpose
    and t.used_at is null and t.revoked_at is null;
  insert into app_private.account_tokens (user_id, purpose, token_hash, email, expires_at)
  values (v_user.id, issue_account_token.purpose, digest(v_token, 'sha256'), v_email, now() + v_ttl);
  return query select v_token, v_email, v_user.name, now() + v_ttl;
end;
$$;
comment on function app_private.issue_account_token(text, uuid, text) is
  'For the mail worker: a fresh token of the purpose for the user (older ones stop working), or no row when there is nothing to send.';

-- Takes a token for one of the purposes: locks its row (two requests racing with one token: the
-- second waits, then finds it used), checks it and marks it used. The caller's transaction
-- rolls the use back if anything after it fails.
create or replace function app_private.use_account_token(purposes text[], token text) returns app_private.account_tokens
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_token app_private.account_tokens;
  v_user_id uuid := app_public.current_user_id();
begin
  if use_account_token.token is null or use_account_token.token !~ '^[0-9a-f]{64}$' then
    perform app_hidden.raise_error('TOKEN_INVALID', 'This link is not valid.');
  end if;
  select * into v_token from app_private.account_tokens t
  where t.token_hash = digest(use_account_token.token, 'sha256')
  for update;
  if not found or not v_token.purpose = any (use_account_token.purposes) or v_token.revoked_at is not null
     or exists (select 1 from app_public.users u where u.id = v_token.user_id and u.deleted_at is not null) then
    perform app_hidden.raise_error('TOKEN_INVALID', 'This link is not valid.');
  end if;
  if v_token.used_at is not null then
    perform app_hidden.raise_error('TOKEN_USED', 'This link has already been used.');
  end if;
  if v_token.expires_at <= now() then
    perform app_hidden.raise_error('TOKEN_EXPIRED', 'This link has expired; ask for a new one.');
  end if;
  if v_user_id is not null and v_user_id <> v_token.user_id then
    perform app_hidden.raise_error('TOKEN_USER_MISMATCH', 'This link belongs to another account; sign out first.');
  end if;
  update app_private.account_tokens t set used_at = now() where t.id = v_token.id returning * into v_token;
  return v_token;
end;
$$;

-- Tokens of a user that must stop working (a password change ends pending resets, an email change
-- ends pending verifications of the old address).
create or replace function app_private.revoke_account_tokens(user_id uuid, purposes text[]) returns void
  language sql volatile security definer
  set search_path = pg_catalog, public
as $$
  update app_private.account_tokens t set revoked_at = now()
  where t.user_id = revoke_account_tokens.user_id and t.purpose = any (revoke_account_tokens.purposes)
    and t.used_at is null and t.revoked_at is null;
$$;

-- Daily clean-up (job prune_account_records): tokens a week past their expiry and attempt
-- counters whose window ended a day ago are of no use to anyone.
create or replace function app_private.prune_account_records() returns bigint
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_tokens bigint;
  v_counters bigint;
begin
  delete from app_private.account_tokens t where t.expires_at < now() - interval '7 days';
  get diagnostics v_tokens = row_count;
  -- (known addresses are kept for their lifetime, 30 days)
  delete from app_private.attempt_counters c
  where c.window_started_at < now() - case when c.scope = 'known' then app_hidden.known_address_lifetime() else interval '2 days' end;
  get diagnostics v_counters = row_count;
  return v_tokens + v_counters;
end;
$$;

create or replace trigger _100_audit_columns before insert or update on app_private.account_tokens
  for each row execute function app_private.tg_audit_columns();
