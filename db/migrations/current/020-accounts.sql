-- Accounts (issue 13): email verification, password reset and change, email change, sessions
-- with idle expiry, account deletion, attempt limits. Tables and columns only; the rules are in
-- db/functions/020-accounts and db/functions/010-foundation (users.sql, sessions.sql). Written to
-- run again.

-- When the user proved they read mail at their address (null: not yet). Existing accounts start
-- unverified: nobody proved anything before this existed (they can ask for a link).
alter table app_public.users add column if not exists email_verified_at timestamptz;
-- Set when the account was deleted: the row stays, anonymised, so that audit entries and other
-- references keep an id to point at.
alter table app_public.users add column if not exists deleted_at timestamptz;
comment on column app_public.users.email_verified_at is E'@behavior -*\nWhen the address was proven (null: not yet).';
comment on column app_public.users.deleted_at is E'@behavior -*\nWhen the account was deleted (the row is anonymised).';

-- Sessions: what the user sees in mySessions, and what idle expiry reads.
alter table app_private.sessions add column if not exists last_used_at timestamptz not null default now();
alter table app_private.sessions add column if not exists user_agent text;
do $$
begin
  if not exists (select 1 from pg_constraint where conname = 'sessions_user_agent_check') then
    alter table app_private.sessions add constraint sessions_user_agent_check check (length(user_agent) <= 512);
  end if;
end;
$$;

-- One-time tokens mailed to a user: email verification, password reset, email change. Only the
-- SHA-256 of the token is kept; the token itself exists only in the mail.
create table if not exists app_private.account_tokens (
  id uuid primary key default app_hidden.uuid_generate_v7(),
  user_id uuid not null references app_public.users on delete cascade,
  purpose text not null constraint account_tokens_purpose_check
    check (purpose in ('verify_email', 'reset_password', 'change_email')),
  token_hash bytea not null constraint account_tokens_token_hash_key unique,
  -- The address the token proves: the user's address for verify_email and reset_password, the
  -- new address for change_email.
  email citext not null,
  expires_at timestamptz not null,
  used_at timestamptz,
  -- Superseded by a newer token of the same purpose, or by a password change.
  revoked_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid
);
create index if not exists account_tokens_user_purpose_idx on app_private.account_tokens (user_id, purpose)
  where used_at is null and revoked_at is null;
create index if not exists account_tokens_expires_at_idx on app_private.account_tokens (expires_at);

-- Attempt counters of the brute-force limits: one row per (action, scope, subject) and window.
-- subject is an email address, a client address or a user id. Shared by every server process.
create table if not exists app_private.attempt_counters (
  action text not null,
  scope text not null constraint attempt_counters_scope_check check (scope in ('email', 'address', 'user')),
  subject text not null constraint attempt_counters_subject_check check (length(subject) <= 320),
  window_started_at timestamptz not null,
  attempts int not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (action, scope, subject)
);
create index if not exists attempt_counters_window_started_at_idx on app_private.attempt_counters (window_started_at);

-- The account settings the server writes at start-up from its environment (core/config.ts,
-- accountsConfig): token lifetimes, idle expiry, what an unverified user may not do, limits.
create table if not exists app_private.account_settings (
  id boolean primary key default true constraint account_settings_single_row check (id),
  verification_token_ttl interval not null default interval '3 days',
  reset_token_ttl interval not null default interval '1 hour',
  email_change_token_ttl interval not null default interval '1 day',
  session_idle_timeout interval not null default interval '8 hours',
  session_lifetime interval not null default interval '1 day',
  -- What needs a verified address: any of 'invitations', 'api_keys', 'organizations'.
  verified_email_required_for text[] not null default '{invitations,api_keys}',
  -- {"<action>": {"<scope>": {"max": n, "seconds": s}}}; an action or scope left out is unlimited.
  attempt_limits jsonb not null default '{
    "authenticate": {"email": {"max": 10, "seconds": 900}, "address": {"max": 50, "seconds": 900}},
    "register": {"email": {"max": 5, "seconds": 3600}, "address": {"max": 50, "seconds": 3600}},
    "forgot_password": {"email": {"max": 5, "seconds": 3600}, "address": {"max": 20, "seconds": 3600}},
    "verify_email": {"email": {"max": 10, "seconds": 3600}, "address": {"max": 50, "seconds": 3600}},
    "reset_password": {"address": {"max": 20, "seconds": 3600}},
    "resend_verification_email": {"user": {"max": 5, "seconds": 3600}},
    "change_email": {"user": {"max": 5, "seconds": 3600}},
    "password_check": {"user": {"max": 10, "seconds": 900}}
  }',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid
);
insert into app_private.account_settings (id) values (true) on conflict (id) do nothing;

-- What mySessions returns for each session.
do $$
begin
  if not exists (select 1 from pg_type t join pg_namespace n on n.oid = t.typnamespace
                 where n.nspname = 'app_public' and t.typname = 'user_session') then
    create type app_public.user_session as (
      id uuid,
      created_at timestamptz,
      last_used_at timestamptz,
      user_agent text,
      "current" boolean
    );
  end if;
end;
$$;
comment on type app_public.user_session is 'One of your signed-in sessions.';
