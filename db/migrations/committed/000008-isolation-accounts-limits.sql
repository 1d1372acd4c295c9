--! Previous: sha1:770c5cc29c3922fb54f5ecb69a5d5711d461f15e
--! Hash: sha1:2be5da526f19c706c996dc52401d447b7ee31295
--! Message: isolation-accounts-limits

--! split: 020-accounts.sql
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

--! split: 100-plans-abuse-limits.sql
-- Limits against using the product to hurt others or to farm free credits, kept with the other
-- plan limits (null: no limit; operators change them with an UPDATE of app_public.plans):
-- - how many organizations on this plan one user may own (every new organization gets the free
--   plan's monthly credits, so without a limit a user could create organizations for credits);
-- - how many invitation emails an organization on this plan may send per hour, and to one
--   address per day (invite → revoke → invite sent mail to any address without limit).
alter table app_public.plans add column if not exists max_owned_organizations int;
alter table app_public.plans add column if not exists max_invitations_per_hour int;
alter table app_public.plans add column if not exists max_invitations_per_email_per_day int;
alter table app_public.plans drop constraint if exists plans_abuse_limits_check;
alter table app_public.plans add constraint plans_abuse_limits_check check (
  coalesce(max_owned_organizations, 1) >= 1 and coalesce(max_invitations_per_hour, 1) >= 1
  and coalesce(max_invitations_per_email_per_day, 1) >= 1);
comment on column app_public.plans.max_owned_organizations is
  'How many organizations on this plan one user may own (null: any number). ORGANIZATION_LIMIT_REACHED past it.';
comment on column app_public.plans.max_invitations_per_hour is
  'Invitation emails (invites and resends) an organization on this plan may send per hour (null: no limit).';
comment on column app_public.plans.max_invitations_per_email_per_day is
  'Invitation emails an organization on this plan may send to one address per day (null: no limit).';

-- Data: the limits of the plans this project ships (only where still unset).
update app_public.plans set max_owned_organizations = 3 where id = 'free' and max_owned_organizations is null;
update app_public.plans set max_invitations_per_hour = case id when 'free' then 20 when 'pro' then 100 else 500 end
 where max_invitations_per_hour is null;
update app_public.plans set max_invitations_per_email_per_day = 5 where max_invitations_per_email_per_day is null;

-- Every invitation email sent (invite or resend), to count them per hour and per address per
-- day. Rows older than two days are pruned by the invitation expiry sweep.
create table if not exists app_private.invitation_sends (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  email citext not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id)
);
create index if not exists invitation_sends_organization_created_idx
  on app_private.invitation_sends (organization_id, created_at);
create index if not exists invitation_sends_organization_email_created_idx
  on app_private.invitation_sends (organization_id, email, created_at);
create index if not exists invitation_sends_created_idx on app_private.invitation_sends (created_at);

--! split: 101-plans-period-end-default.sql
-- A usage period ends at the start of the next UTC month. The default written in 000003 added
-- one month in the session's time zone (under America/New_York a period ended at 01:00 UTC, and
-- the March one three days early). The counter trigger sets both period columns now
-- (db/functions/100-plans/counters.sql); the default agrees with it.
alter table app_public.usage_counters
  alter column period_end set default (date_trunc('month', now() at time zone 'UTC') + interval '1 month') at time zone 'UTC';

--! split: 110-credits-system-keys.sql
-- System operations get their own key column. Until now the monthly allowance
-- ('allowance:<period>'), Stripe grants ('stripe:invoice:<id>', 'stripe:checkout_session:<id>')
-- and a generation's reservation ('generation:<client key>') shared one idempotency-key
-- namespace per organization with the keys clients send, so a client could take a system key
-- first and make the system operation fail for good. Now a client's key can only ever be stored
-- in idempotency_key, and the system's only in system_key: the two cannot meet.

alter table app_public.credit_ledger add column if not exists system_key text;
alter table app_public.credit_reservations add column if not exists system_key text;
alter table app_public.credit_reservations alter column idempotency_key drop not null;

do $$
begin
  if not exists (select 1 from pg_constraint where conname = 'credit_ledger_system_key') then
    alter table app_public.credit_ledger
      add constraint credit_ledger_system_key unique (organization_id, system_key);
  end if;
  if not exists (select 1 from pg_constraint where conname = 'credit_reservations_system_key') then
    alter table app_public.credit_reservations
      add constraint credit_reservations_system_key unique (organization_id, system_key);
  end if;
end;
$$;

comment on column app_public.credit_ledger.idempotency_key is
  'The key the client sent with the mutation that wrote this entry (null for system entries).';
comment on column app_public.credit_ledger.system_key is
  'The key of the system operation that wrote this entry: allowance:<period>, stripe:invoice:<id>, stripe:checkout_session:<id>, generation:<id>, or an operator''s key. No client input reaches it.';
comment on column app_public.credit_reservations.idempotency_key is
  'The key the client sent with reserveCredits (null for a generation''s reservation).';
comment on column app_public.credit_reservations.system_key is
  'generation:<id> for the reservation a generation holds; null for a client''s reservation.';

-- Data: every key the system wrote moves to system_key. Grants and adjustments are only ever
-- made by the system (allowance, Stripe, operators); a reservation belongs to a generation when
-- the generation points at it. The ledger is append-only, so its trigger steps aside for this
-- one change.
alter table app_public.credit_ledger disable trigger _050_append_only;

update app_public.credit_reservations r
   set system_key = 'generation:' || g.id, idempotency_key = null
  from app_public.generations g
 where g.organization_id = r.organization_id and g.reservation_id = r.id and r.system_key is null;

update app_public.credit_ledger l
   set system_key = 'generation:' || l.generation_id, idempotency_key = null
 where l.kind = 'reserve' and l.generation_id is not null and l.idempotency_key is not null;

update app_public.credit_ledger l
   set system_key = l.idempotency_key, idempotency_key = null
 where l.kind in ('grant', 'adjust') and l.idempotency_key is not null;

alter table app_public.credit_ledger enable trigger _050_append_only;

alter table app_public.credit_reservations drop constraint if exists credit_reservations_one_key;
alter table app_public.credit_reservations
  add constraint credit_reservations_one_key check (num_nonnulls(idempotency_key, system_key) = 1);

-- ledger_append takes system_key; grant_credits and debit_credits name their key system_key.
-- Their new texts are in db/functions/110-credits/.
drop function if exists app_private.ledger_append(uuid, app_public.credit_entry_kind, bigint, bigint, text, uuid, uuid, uuid, text, text);
drop function if exists app_private.grant_credits_from(uuid, bigint, text, timestamptz, text, text);
drop function if exists app_private.grant_credits(uuid, bigint, text, timestamptz, text);
drop function if exists app_private.debit_credits(uuid, bigint, text, text);

--! split: 400-operations-organization-failures.sql
-- Batch jobs (period rollover, grant and reservation expiry, invitation expiry, hard delete,
-- audit pruning) handle each organization on its own: one organization's failure is rolled back
-- alone, logged, and counted here as outcome 'organization_failed' of the job's task (exposed in
-- /metrics as tenantbase_jobs_total).
alter table app_private.job_counters drop constraint if exists job_counters_outcome_check;
alter table app_private.job_counters
  add constraint job_counters_outcome_check check (outcome in ('completed', 'failed', 'organization_failed'));
