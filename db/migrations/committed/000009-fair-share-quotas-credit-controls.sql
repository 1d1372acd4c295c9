--! Previous: sha1:2be5da526f19c706c996dc52401d447b7ee31295
--! Hash: sha1:4ac3773e1ea43228b01105fcf48355a54e8dea59
--! Message: fair-share-quotas-credit-controls

--! split: 021-accounts-attempt-pacing.sql
-- Attempt limits that others cannot turn against an account's owner (issue 25, A2): failures are
-- refused per client address and per (address, account) pair; the account alone is only slowed
-- down (a queue of short turns, 020-accounts/attempt-limits.sql); an address that signed in to
-- the account recently is remembered and not slowed down; forgotPassword's per-address count
-- becomes a mail rate. New scopes of attempt_counters:
--   pair   - one client address with one email address (hard limit)
--   known  - a successful sign-in from this address to this email (window_started_at: when)
--   ticket - this address's turn in the account's slow-down queue (window_started_at: its time)
--   mail   - reset mails sent to an address (forgotPassword's mail rate)
alter table app_private.attempt_counters drop constraint if exists attempt_counters_scope_check;
alter table app_private.attempt_counters add constraint attempt_counters_scope_check
  check (scope in ('email', 'address', 'user', 'pair', 'known', 'ticket', 'mail'));
-- On an account's (scope 'email') row of a paced action: when the next turn in its queue starts.
alter table app_private.attempt_counters add column if not exists next_turn_at timestamptz;

alter table app_private.account_settings alter column attempt_limits set default '{
    "authenticate": {"email": {"max": 10, "seconds": 900, "maxDelay": 30}, "pair": {"max": 10, "seconds": 900}, "address": {"max": 50, "seconds": 900}},
    "register": {"pair": {"max": 5, "seconds": 3600}, "address": {"max": 50, "seconds": 3600}},
    "forgot_password": {"email": {"max": 1, "seconds": 600}, "address": {"max": 20, "seconds": 3600}},
    "verify_email": {"email": {"max": 10, "seconds": 3600}, "address": {"max": 50, "seconds": 3600}},
    "reset_password": {"address": {"max": 20, "seconds": 3600}},
    "resend_verification_email": {"user": {"max": 5, "seconds": 3600}},
    "change_email": {"user": {"max": 5, "seconds": 3600}},
    "password_check": {"user": {"max": 10, "seconds": 900}}
  }';
-- A database still on the old defaults takes the new ones (servers also write theirs at start-up).
update app_private.account_settings set attempt_limits = '{
    "authenticate": {"email": {"max": 10, "seconds": 900, "maxDelay": 30}, "pair": {"max": 10, "seconds": 900}, "address": {"max": 50, "seconds": 900}},
    "register": {"pair": {"max": 5, "seconds": 3600}, "address": {"max": 50, "seconds": 3600}},
    "forgot_password": {"email": {"max": 1, "seconds": 600}, "address": {"max": 20, "seconds": 3600}},
    "verify_email": {"email": {"max": 10, "seconds": 3600}, "address": {"max": 50, "seconds": 3600}},
    "reset_password": {"address": {"max": 20, "seconds": 3600}},
    "resend_verification_email": {"user": {"max": 5, "seconds": 3600}},
    "change_email": {"user": {"max": 5, "seconds": 3600}},
    "password_check": {"user": {"max": 10, "seconds": 900}}
  }'::jsonb
where attempt_limits = '{
    "authenticate": {"email": {"max": 10, "seconds": 900}, "address": {"max": 50, "seconds": 900}},
    "register": {"email": {"max": 5, "seconds": 3600}, "address": {"max": 50, "seconds": 3600}},
    "forgot_password": {"email": {"max": 5, "seconds": 3600}, "address": {"max": 20, "seconds": 3600}},
    "verify_email": {"email": {"max": 10, "seconds": 3600}, "address": {"max": 50, "seconds": 3600}},
    "reset_password": {"address": {"max": 20, "seconds": 3600}},
    "resend_verification_email": {"user": {"max": 5, "seconds": 3600}},
    "change_email": {"user": {"max": 5, "seconds": 3600}},
    "password_check": {"user": {"max": 10, "seconds": 900}}
  }'::jsonb;

--! split: 101-plans-quotas.sql
-- Per-plan quotas on what an organization can create (issue 25, findings A4 and A9). Each is a
-- column of app_public.plans (null: no limit; operators change them with an UPDATE of
-- app_public.plans), checked where the thing is created, under a row lock so that concurrent
-- requests count each other:
-- - max_api_keys: live API keys (not revoked, not expired); API_KEY_LIMIT_REACHED past it;
-- - max_api_keys_created_per_hour: keys created per clock hour (UTC), revoked ones included, so
--   create/revoke cycles stop; QUOTA_EXCEEDED;
-- - max_generations_per_hour / max_generations_per_period: generations started in the current
--   clock hour (UTC) / usage period, failed ones included; QUOTA_EXCEEDED;
-- - max_projects_created_per_hour: projects created or restored in the current clock hour (a
--   project deleted since still counts); QUOTA_EXCEEDED;
-- - max_stored_projects: project rows kept, soft-deleted ones included; QUOTA_EXCEEDED;
-- - max_open_reservations: credit reservations open at once (each one holds a job in the shared
--   queue until it expires); QUOTA_EXCEEDED.
alter table app_public.plans add column if not exists max_api_keys int;
alter table app_public.plans add column if not exists max_api_keys_created_per_hour int;
alter table app_public.plans add column if not exists max_generations_per_hour int;
alter table app_public.plans add column if not exists max_generations_per_period int;
alter table app_public.plans add column if not exists max_projects_created_per_hour int;
alter table app_public.plans add column if not exists max_stored_projects int;
alter table app_public.plans add column if not exists max_open_reservations int;
alter table app_public.plans drop constraint if exists plans_quotas_check;
alter table app_public.plans add constraint plans_quotas_check check (
  coalesce(max_api_keys, 0) >= 0
  and coalesce(max_api_keys_created_per_hour, 0) >= 0
  and coalesce(max_generations_per_hour, 0) >= 0
  and coalesce(max_generations_per_period, 0) >= 0
  and coalesce(max_projects_created_per_hour, 0) >= 0
  and coalesce(max_stored_projects, 0) >= 0
  and coalesce(max_open_reservations, 0) >= 0);
comment on column app_public.plans.max_api_keys is
  'Live (not revoked, not expired) API keys an organization on this plan may have (null: any number). API_KEY_LIMIT_REACHED past it.';
comment on column app_public.plans.max_api_keys_created_per_hour is
  'API keys an organization may create per clock hour (UTC), revoked ones included (null: no limit). QUOTA_EXCEEDED past it.';
comment on column app_public.plans.max_generations_per_hour is
  'Generations an organization may start per clock hour (UTC), failed ones included (null: no limit). QUOTA_EXCEEDED past it.';
comment on column app_public.plans.max_generations_per_period is
  'Generations an organization may start per usage period (calendar month, UTC), failed ones included (null: no limit). QUOTA_EXCEEDED past it.';
comment on column app_public.plans.max_projects_created_per_hour is
  'Projects an organization may create or restore per clock hour (UTC); deleted ones still count (null: no limit). QUOTA_EXCEEDED past it.';
comment on column app_public.plans.max_stored_projects is
  'Project rows an organization may keep, soft-deleted ones included (null: no limit). QUOTA_EXCEEDED past it.';
comment on column app_public.plans.max_open_reservations is
  'Credit reservations an organization may hold open at once (null: no limit). QUOTA_EXCEEDED past it.';

-- Data: the quotas of the plans this project ships (only where still unset).
update app_public.plans set max_api_keys = case id when 'free' then 10 when 'pro' then 50 else 200 end
 where max_api_keys is null and id in ('free', 'pro', 'enterprise');
update app_public.plans set max_api_keys_created_per_hour = case id when 'free' then 30 when 'pro' then 200 else 1000 end
 where max_api_keys_created_per_hour is null and id in ('free', 'pro', 'enterprise');
update app_public.plans set max_generations_per_hour = case id when 'free' then 100 when 'pro' then 2000 else 20000 end
 where max_generations_per_hour is null and id in ('free', 'pro', 'enterprise');
update app_public.plans set max_generations_per_period = case id when 'free' then 2000 when 'pro' then 200000 end
 where max_generations_per_period is null and id in ('free', 'pro');
update app_public.plans set max_projects_created_per_hour = case id when 'free' then 10 when 'pro' then 100 else 1000 end
 where max_projects_created_per_hour is null and id in ('free', 'pro', 'enterprise');
update app_public.plans set max_stored_projects = case id when 'free' then 100 when 'pro' then 2000 else 20000 end
 where max_stored_projects is null and id in ('free', 'pro', 'enterprise');
update app_public.plans set max_open_reservations = case id when 'free' then 1000 when 'pro' then 5000 else 20000 end
 where max_open_reservations is null and id in ('free', 'pro', 'enterprise');

-- Hourly quota windows: one row per organization and quota, holding the current clock hour and
-- how much of the quota it used. The row is also the lock concurrent requests queue on.
create table if not exists app_private.hourly_quota_usage (
  organization_id uuid not null references app_public.organizations on delete cascade,
  quota text not null,
  window_start timestamptz not null,
  used int not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, quota),
  constraint hourly_quota_usage_quota_check check (quota ~ '^[a-z][a-zA-Z]{0,39}$'),
  constraint hourly_quota_usage_used_check check (used >= 0)
);
comment on table app_private.hourly_quota_usage is
  'Per organization and hourly quota: the current window (a UTC clock hour) and how much of it was used.';

--! split: 115-credits-open-reservations.sql
-- Open reservations are counted per organization against its plan's max_open_reservations at
-- every reservation (issue 25, finding A9).
create index if not exists credit_reservations_open_organization_idx
  on app_public.credit_reservations (organization_id) where status = 'open';

--! split: 125-generations-metadata-size.sql
-- Generation metadata is bounded at 16 kB of JSON text (issue 25, A7): start_generation and
-- complete_generation refuse more with INVALID_METADATA; this constraint holds for every other
-- way a row could be written. NOT VALID: rows written before (up to 64 kB) stay readable; the
-- bound applies to every new or changed row.
alter table app_public.generations drop constraint if exists generations_metadata_size;
alter table app_public.generations
  add constraint generations_metadata_size check (octet_length(metadata::text) <= 16384) not valid;

--! split: 141-credits-grant-categories.sql
-- Grant categories and priority (issue 21, section 1): every grant says what kind of credits it
-- holds and where it stands in the one spending order (110-credits/grant-order.sql), and every
-- ledger entry that moves credits out of grants says which grants paid for it.

do $$
begin
  if not exists (select 1 from pg_type t join pg_namespace n on n.oid = t.typnamespace
                 where n.nspname = 'app_public' and t.typname = 'credit_grant_category') then
    -- The order of the labels is the order of the third tie-breaker of spending (promotional
    -- before refund before purchased): do not reorder.
    create type app_public.credit_grant_category as enum ('allowance', 'promotional', 'refund', 'purchased');
  end if;
end
$$;

alter table app_public.credit_grants add column if not exists category app_public.credit_grant_category;
alter table app_public.credit_grants add column if not exists priority smallint;

-- Existing grants, by the source they were granted with (plain SQL: no function of db/functions).
update app_public.credit_grants g
set category = case
      when g.source in ('monthly_allowance', 'subscription') then 'allowance'
      when g.source in ('purchase', 'auto_top_up') then 'purchased'
      when g.source = 'refund' then 'refund'
      else 'promotional' end::app_public.credit_grant_category
where g.category is null;
update app_public.credit_grants g
set priority = case g.category when 'allowance' then 10 when 'promotional' then 20 when 'refund' then 30 else 40 end
where g.priority is null;

alter table app_public.credit_grants alter column category set not null;
alter table app_public.credit_grants alter column priority set not null;
alter table app_public.credit_grants drop constraint if exists credit_grants_priority_check;
alter table app_public.credit_grants add constraint credit_grants_priority_check check (priority between 0 and 100);
comment on column app_public.credit_grants.category is
  'allowance (the plan''s credits), promotional (an operator or a promotion), purchased (paid for) or refund.';
comment on column app_public.credit_grants.priority is
  '0–100, lower is spent first. Defaults: allowance 10, promotional 20, refund 30, purchased 40.';

-- The spending order: priority, soonest expiry (never last), category, oldest.
drop index if exists app_public.credit_grants_spend_order_idx;
create index if not exists credit_grants_spend_priority_idx on app_public.credit_grants
  (organization_id, priority, expires_at nulls last, category, created_at, id) where remaining > 0;
create index if not exists credit_grants_category_idx on app_public.credit_grants (organization_id, category) where remaining > 0;

-- Which grants paid for each spend (capture and adjust entries): one row per entry and grant, written
-- with the entry, under the account lock. amount is what the entry took from the grant.
create table if not exists app_public.credit_ledger_allocations (
  organization_id uuid not null references app_public.organizations on delete cascade,
  ledger_entry_id uuid not null,
  grant_id uuid not null,
  amount bigint not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, ledger_entry_id, grant_id),
  constraint credit_ledger_allocations_amount_check check (amount > 0),
  constraint credit_ledger_allocations_ledger_entry_fkey foreign key (organization_id, ledger_entry_id)
    references app_public.credit_ledger on delete cascade,
  constraint credit_ledger_allocations_grant_fkey foreign key (organization_id, grant_id)
    references app_public.credit_grants on delete cascade
);
comment on table app_public.credit_ledger_allocations is
  E'@behavior -insert -update -delete\nWhich grants paid for a spend: one row per grant of each capture and adjust (debit) entry.';
comment on column app_public.credit_ledger_allocations.amount is
  'Credits taken from the grant by this entry.';
create index if not exists credit_ledger_allocations_grant_idx on app_public.credit_ledger_allocations (organization_id, grant_id);
alter table app_public.credit_ledger_allocations add column if not exists updated_at timestamptz not null default now();
alter table app_public.credit_ledger_allocations add column if not exists created_by uuid;

-- (an earlier draft of this branch had the order in a function of its own)
drop function if exists app_private.grants_in_spend_order(uuid, uuid);

--! split: 142-credits-spend-caps.sql
-- Spend caps (issue 21, section 2): at most N credits reserved per UTC day, ISO week or calendar
-- month, for an organization, one of its projects or one of its API keys, and optionally at most
-- M credits in a single reservation. Enforced by reserve (110-credits/spend-cap-charges.sql)
-- under the organization's credit-account lock.

do $$
begin
  if not exists (select 1 from pg_type t join pg_namespace n on n.oid = t.typnamespace
                 where n.nspname = 'app_public' and t.typname = 'credit_spend_cap_scope') then
    create type app_public.credit_spend_cap_scope as enum ('organization', 'project', 'api_key');
  end if;
  if not exists (select 1 from pg_type t join pg_namespace n on n.oid = t.typnamespace
                 where n.nspname = 'app_public' and t.typname = 'credit_spend_cap_period') then
    create type app_public.credit_spend_cap_period as enum ('day', 'week', 'month');
  end if;
end
$$;

create table if not exists app_public.credit_spend_caps (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  scope app_public.credit_spend_cap_scope not null,
  project_id uuid,
  api_key_id uuid,
  period app_public.credit_spend_cap_period not null,
  max_credits bigint not null,
  max_per_reservation bigint,
  window_start timestamptz not null default '-infinity',
  window_spent bigint not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id),
  constraint credit_spend_caps_target_check check (
    (scope = 'organization' and project_id is null and api_key_id is null)
    or (scope = 'project' and project_id is not null and api_key_id is null)
    or (scope = 'api_key' and api_key_id is not null and project_id is null)),
  constraint credit_spend_caps_max_credits_check check (max_credits between 1 and 1000000000000),
  constraint credit_spend_caps_max_per_reservation_check check (max_per_reservation between 1 and max_credits),
  constraint credit_spend_caps_window_spent_check check (window_spent >= 0),
  constraint credit_spend_caps_project_fkey foreign key (organization_id, project_id)
    references app_public.projects on delete cascade,
  constraint credit_spend_caps_api_key_fkey foreign key (organization_id, api_key_id)
    references app_public.api_keys on delete cascade
);
comment on table app_public.credit_spend_caps is
  E'@behavior -insert -update -delete\nAt most maxCredits reserved per UTC day, ISO week or calendar month for the organization, a project or an API key (and at most maxPerReservation at once). Set by admins (setSpendCap); reserve refuses with SPEND_CAP_REACHED.';
comment on column app_public.credit_spend_caps.window_start is
  E'@behavior -*\nThe period the window_spent counter belongs to (internal; see spent and resetsAt).';
comment on column app_public.credit_spend_caps.window_spent is
  E'@behavior -*\nCredits reserved in window_start''s period, less what was released (internal; see spent).';
create unique index if not exists credit_spend_caps_target_period_idx on app_public.credit_spend_caps
  (organization_id, scope, coalesce(project_id, api_key_id, organization_id), period);
create index if not exists credit_spend_caps_project_idx on app_public.credit_spend_caps (organization_id, project_id) where project_id is not null;
create index if not exists credit_spend_caps_api_key_idx on app_public.credit_spend_caps (organization_id, api_key_id) where api_key_id is not null;

-- What each open reservation counted against each cap, so that a release gives it back to the
-- same window. Deleted when the reservation settles.
create table if not exists app_private.credit_reservation_cap_charges (
  organization_id uuid not null,
  reservation_id uuid not null,
  cap_id uuid not null,
  window_start timestamptz not null,
  amount bigint not null check (amount > 0),
  primary key (organization_id, reservation_id, cap_id),
  foreign key (organization_id, reservation_id) references app_public.credit_reservations on delete cascade,
  foreign key (organization_id, cap_id) references app_public.credit_spend_caps on delete cascade
);
create index if not exists credit_reservation_cap_charges_cap_idx on app_private.credit_reservation_cap_charges (organization_id, cap_id);

--! split: 211-team-api-key-creators.sql
-- API keys end with their creator's membership (issue 25, finding A10): the keys a removed
-- member or a deleted account created are revoked, found by created_by. And the live keys of an
-- organization are counted against its plan's max_api_keys at every creation.
create index if not exists api_keys_created_by_idx on app_public.api_keys (created_by, organization_id);
create index if not exists api_keys_live_idx on app_public.api_keys (organization_id) where revoked_at is null;

--! split: 221-team-invitation-mail-token.sql
-- The invitation email carries a token of its own, never shown to the inviter: accepting with it
-- proves the invited address (the account becomes verified, as a reset link does), while the
-- token inviteMember/resendInvitation answer to the inviter does not (an inviter who registered
-- the invited address without owning it must not get it verified through their own invitation).
-- Only its hash is kept, like token_hash; null for invitations mailed before this migration.
alter table app_private.invitation_tokens add column if not exists mail_token_hash bytea;
do $$
begin
  if not exists (select 1 from pg_constraint where conname = 'invitation_tokens_mail_token_hash_key') then
    alter table app_private.invitation_tokens
      add constraint invitation_tokens_mail_token_hash_key unique (mail_token_hash);
  end if;
end;
$$;

--! split: 401-plans-concurrent-requests.sql
-- Fair share (issue 25, section B): how many API requests an organization on this plan may have
-- in flight at once in one server process, counted for requests made with its API keys (a
-- signed-in user's requests are counted per user: which organization they touch is only known
-- inside SQL). Null: the server's FAIR_SHARE_MAX_IN_FLIGHT_PER_ORGANIZATION. Read by
-- server/fair-share/plan-limits.ts through app_private.organization_plan().
alter table app_public.plans add column if not exists max_concurrent_requests int;
alter table app_public.plans drop constraint if exists plans_max_concurrent_requests_check;
alter table app_public.plans add constraint plans_max_concurrent_requests_check
  check (max_concurrent_requests is null or max_concurrent_requests between 1 and 10000);
comment on column app_public.plans.max_concurrent_requests is
  'API-key requests an organization on this plan may have in flight at once per server process (null: the server default). More wait their turn; past the queue RATE_LIMITED.';

-- Data: the plans this project ships (only where still unset).
update app_public.plans set max_concurrent_requests = case id when 'free' then 2 when 'pro' then 4 else 6 end
 where max_concurrent_requests is null and id in ('free', 'pro', 'enterprise');

--! split: 501-realtime-plan-limits.sql
-- Realtime budgets per plan (issue 25, A4/A5): how many websockets and how many concurrent
-- subscriptions one organization may hold in one server process. Null means the server's
-- default (REALTIME_MAX_CONNECTIONS_PER_ORGANIZATION, REALTIME_MAX_SUBSCRIPTIONS_PER_ORGANIZATION);
-- whatever the plan says, no organization holds more than REALTIME_MAX_ORGANIZATION_SHARE percent
-- of the process's sockets.
alter table app_public.plans add column if not exists max_realtime_sockets int;
alter table app_public.plans add column if not exists max_realtime_subscriptions int;
alter table app_public.plans drop constraint if exists plans_max_realtime_sockets_check;
alter table app_public.plans add constraint plans_max_realtime_sockets_check
  check (max_realtime_sockets is null or max_realtime_sockets >= 0);
alter table app_public.plans drop constraint if exists plans_max_realtime_subscriptions_check;
alter table app_public.plans add constraint plans_max_realtime_subscriptions_check
  check (max_realtime_subscriptions is null or max_realtime_subscriptions >= 0);
comment on column app_public.plans.max_realtime_sockets is
  'Websockets an organization on this plan may hold open per server process; null = the server default.';
comment on column app_public.plans.max_realtime_subscriptions is
  'Concurrent realtime subscriptions an organization on this plan may hold per server process; null = the server default.';
