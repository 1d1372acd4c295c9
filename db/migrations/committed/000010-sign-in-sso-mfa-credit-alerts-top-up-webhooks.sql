--! Previous: sha1:4ac3773e1ea43228b01105fcf48355a54e8dea59
--! Hash: sha1:dce26cd944fa0c19eb6a48a13827ab6004f39e3f
--! Message: sign-in-sso-mfa-credit-alerts-top-up-webhooks

--! split: 030-identities.sql
-- Identities (sign-in issue, section 1): sign-in through OpenID Connect providers and GitHub.
-- Tables and columns only; the rules are in db/functions/030-identities. Written to run again.
-- Everything here is in app_private: no app role reads it; every access goes through a SECURITY
-- DEFINER function (db/policies/030-identities.sql).

-- An account's identity at a provider, keyed by (issuer, subject), never by email: the address is
-- what the provider said last, kept for the user to recognise the link.
create table if not exists app_private.identities (
  id uuid primary key default app_hidden.uuid_generate_v7(),
  user_id uuid not null references app_public.users on delete cascade,
  -- The configured provider's name (google, github, …) when it was linked.
  provider text not null constraint identities_provider_check check (provider ~ '^[a-z][a-z0-9-]{0,30}$'),
  issuer text not null constraint identities_issuer_check check (length(issuer) between 1 and 500),
  subject text not null constraint identities_subject_check check (length(subject) between 1 and 255),
  email citext constraint identities_email_check check (length(email) <= 320),
  email_verified boolean not null default false,
  last_used_at timestamptz not null default now(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  constraint identities_issuer_subject_key unique (issuer, subject)
);
create index if not exists identities_user_id_idx on app_private.identities (user_id);

-- A sign-in (or link) flow between its start and the provider's callback: single use, ten
-- minutes, bound to the browser that started it (the SHA-256 of a cookie's value). state is kept
-- as its hash (it is the lookup key the callback brings back); nonce and the PKCE verifier must be
-- given back to the token exchange, so they are kept as they are, only for these ten minutes.
create table if not exists app_private.sign_in_flows (
  id uuid primary key default app_hidden.uuid_generate_v7(),
  provider text not null constraint sign_in_flows_provider_check check (provider ~ '^[a-z][a-z0-9-]{0,30}$'),
  state_hash bytea not null constraint sign_in_flows_state_hash_key unique,
  nonce text not null,
  code_verifier text not null,
  browser_hash bytea not null,
  -- Where the app wants the answer (checked against APP_URL by the server before it gets here).
  redirect_url text not null constraint sign_in_flows_redirect_url_check check (length(redirect_url) <= 2000),
  -- Set when a signed-in user is linking a provider to their account.
  link_user_id uuid references app_public.users on delete cascade,
  expires_at timestamptz not null,
  -- The callback took it (its state can never be used again) ...
  used_at timestamptz,
  -- ... and the account it led to was decided (a code issued or an identity linked) once.
  completed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid
);
create index if not exists sign_in_flows_link_user_id_idx on app_private.sign_in_flows (link_user_id);
create index if not exists sign_in_flows_expires_at_idx on app_private.sign_in_flows (expires_at);

-- The one-time code the callback hands the app (in its redirect) and the app exchanges through
-- GraphQL for a session token: only its SHA-256 is kept; single use, one minute.
create table if not exists app_private.sign_in_codes (
  id uuid primary key default app_hidden.uuid_generate_v7(),
  code_hash bytea not null constraint sign_in_codes_code_hash_key unique,
  user_id uuid not null references app_public.users on delete cascade,
  identity_id uuid not null references app_private.identities on delete cascade,
  expires_at timestamptz not null,
  used_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid
);
create index if not exists sign_in_codes_user_id_idx on app_private.sign_in_codes (user_id);
create index if not exists sign_in_codes_identity_id_idx on app_private.sign_in_codes (identity_id);
create index if not exists sign_in_codes_expires_at_idx on app_private.sign_in_codes (expires_at);

-- How a session was made: with a password (every session before this) or through a provider (the
-- identity it used).
alter table app_private.sessions add column if not exists method text not null default 'password';
alter table app_private.sessions drop constraint if exists sessions_method_check;
alter table app_private.sessions add constraint sessions_method_check check (method in ('password', 'provider', 'sso'));
alter table app_private.sessions add column if not exists identity_id uuid references app_private.identities on delete set null;
create index if not exists sessions_identity_id_idx on app_private.sessions (identity_id);

-- What myIdentities returns for each linked provider.
do $$
begin
  if not exists (select 1 from pg_type t join pg_namespace n on n.oid = t.typnamespace
                 where n.nspname = 'app_public' and t.typname = 'user_identity') then
    create type app_public.user_identity as (
      id uuid,
      provider text,
      email text,
      email_verified boolean,
      created_at timestamptz,
      last_used_at timestamptz
    );
  end if;
end;
$$;
comment on type app_public.user_identity is 'A sign-in provider linked to your account.';

-- Sign-in flows started per client address (the attempt limits of 020-accounts; servers also
-- write theirs at start-up, RATE_LIMIT_SIGN_IN_FLOW_ADDRESS).
update app_private.account_settings
set attempt_limits = attempt_limits || '{"sign_in_flow": {"address": {"max": 30, "seconds": 900}}}'::jsonb
where not attempt_limits ? 'sign_in_flow';

--! split: 040-organization-sso.sql
-- Organization SSO (sign-in issue, section 2; docs/organization-sso.md): email domains an
-- organization proves by DNS, its OpenID Connect connection, and what a session records about
-- how it satisfied an organization's SSO. Tables and columns only; the rules are in
-- db/functions/040-organization-sso. Written to run again.

-- Whether the organization's rows are visible only to sessions made through its connection, the
-- role a person provisioned just in time gets.
alter table app_public.organizations add column if not exists sso_required boolean not null default false;
alter table app_public.organizations add column if not exists sso_jit_role app_public.organization_role not null default 'member';
alter table app_public.organizations drop constraint if exists organizations_sso_jit_role_check;
alter table app_public.organizations add constraint organizations_sso_jit_role_check check (sso_jit_role <> 'owner');
comment on column app_public.organizations.sso_required is
  'When true, the organization is visible only to sessions made through its SSO connection (owners: break glass, audited).';
comment on column app_public.organizations.sso_jit_role is
  'The role of a person whose first SSO sign-in made them a member.';

-- An email domain an organization claims; verified by a DNS TXT record holding its token. A
-- domain is verified by one organization at most (the partial unique index). Read by the SSO
-- sign-in before any organization is known, so on Citus a reference table (docs/scaling.md).
create table if not exists app_public.sso_domains (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  domain citext not null,
  verification_token text not null default encode(gen_random_bytes(16), 'hex'),
  verified_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id),
  constraint sso_domains_domain_check check (length(domain) <= 253 and domain ~ '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$'),
  constraint sso_domains_organization_domain_key unique (organization_id, domain)
);
comment on table app_public.sso_domains is
  E'@behavior -insert -update -delete\nAn email domain the organization claims for SSO; verified by a DNS TXT record (addSsoDomain, verifySsoDomain, removeSsoDomain).';
create index if not exists sso_domains_id_idx on app_public.sso_domains (id);
comment on constraint sso_domains_organization_domain_key on app_public.sso_domains is E'@behavior -single';
create unique index if not exists sso_domains_verified_domain_key on app_public.sso_domains (domain) where verified_at is not null;

-- The organization's OpenID Connect connection (one per organization). The client secret is kept
-- encrypted (AES-256-GCM in the server with SSO_SECRET_KEY); no app role may read the column.
create table if not exists app_public.sso_connections (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  issuer text not null,
  client_id text not null,
  client_secret_encrypted bytea not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id),
  constraint sso_connections_organization_key unique (organization_id),
  constraint sso_connections_issuer_check check (length(issuer) between 8 and 500 and issuer ~ '^https?://'),
  constraint sso_connections_client_id_check check (length(client_id) between 1 and 255),
  constraint sso_connections_secret_check check (length(client_secret_encrypted) between 29 and 2000)
);
comment on table app_public.sso_connections is
  E'@name sso_provider\n@behavior -insert -update -delete\nThe organization''s OpenID Connect connection for SSO (SsoProvider in GraphQL: a type named ...Connection would read as a list); its client secret is write-only.';
comment on column app_public.sso_connections.client_secret_encrypted is E'@behavior -*\nEncrypted; never readable through the API.';
create unique index if not exists sso_connections_id_key on app_public.sso_connections (id);

-- How a session satisfied an organization's SSO: through its connection, or an owner's audited
-- break glass for one organization.
alter table app_private.sessions add column if not exists sso_connection_id uuid references app_public.sso_connections (id) on delete set null;
create index if not exists sessions_sso_connection_id_idx on app_private.sessions (sso_connection_id);
alter table app_private.sessions add column if not exists sso_break_glass_organization_id uuid references app_public.organizations on delete set null;
create index if not exists sessions_sso_break_glass_organization_id_idx on app_private.sessions (sso_break_glass_organization_id);

-- An SSO sign-in flow and its one-time code carry the connection they went through.
alter table app_private.sign_in_flows add column if not exists sso_connection_id uuid references app_public.sso_connections (id) on delete cascade;
create index if not exists sign_in_flows_sso_connection_id_idx on app_private.sign_in_flows (sso_connection_id);
alter table app_private.sign_in_codes add column if not exists sso_connection_id uuid references app_public.sso_connections (id) on delete cascade;
create index if not exists sign_in_codes_sso_connection_id_idx on app_private.sign_in_codes (sso_connection_id);

comment on index app_public.sso_domains_verified_domain_key is
  'global-unique: a domain is verified by one organization at most (sso_domains is a reference table on Citus).';
comment on index app_public.sso_connections_id_key is
  'global-unique: sessions, flows and codes point at a connection by its id (sso_connections is a reference table on Citus).';

--! split: 050-mfa.sql
-- Multi-factor sign-in (MFA issue): TOTP and passkey factors, recovery codes, the challenges
-- between a first and a second factor, the assurance level of sessions and the organization
-- policy. Tables and columns only; the rules are in db/functions/050-mfa. Written to run again.
-- The new tables are in app_private: no app role reads them; every access goes through a
-- SECURITY DEFINER function (db/policies/050-mfa.sql).

-- A second factor of an account. TOTP: the secret encrypted by the server (MFA_SECRET_KEY; the
-- database never sees it in clear) and the last accepted time step (a code is accepted once).
-- Passkey: the WebAuthn credential (id, COSE public key), its signature counter and backup
-- flags. A factor counts once confirmed_at is set (TOTP: a first code; passkey: registration).
create table if not exists app_private.mfa_factors (
  id uuid primary key default app_hidden.uuid_generate_v7(),
  user_id uuid not null references app_public.users on delete cascade,
  kind text not null constraint mfa_factors_kind_check check (kind in ('totp', 'passkey')),
  name text not null default '' constraint mfa_factors_name_check check (length(name) <= 100),
  totp_secret_encrypted text constraint mfa_factors_totp_secret_check check (length(totp_secret_encrypted) <= 500),
  totp_last_step bigint,
  passkey_credential_id text constraint mfa_factors_passkey_credential_id_check check (length(passkey_credential_id) <= 1400),
  passkey_public_key bytea constraint mfa_factors_passkey_public_key_check check (length(passkey_public_key) <= 2000),
  passkey_counter bigint,
  passkey_transports text[] constraint mfa_factors_passkey_transports_check check (cardinality(passkey_transports) <= 10),
  passkey_device_type text constraint mfa_factors_passkey_device_type_check check (passkey_device_type in ('singleDevice', 'multiDevice')),
  passkey_backed_up boolean,
  confirmed_at timestamptz,
  last_used_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  constraint mfa_factors_kind_fields_check check (
    (kind = 'totp' and totp_secret_encrypted is not null)
    or (kind = 'passkey' and passkey_credential_id is not null and passkey_public_key is not null and passkey_counter is not null))
);
create index if not exists mfa_factors_user_id_idx on app_private.mfa_factors (user_id);
create unique index if not exists mfa_factors_passkey_credential_id_key
  on app_private.mfa_factors (passkey_credential_id) where passkey_credential_id is not null;

-- Recovery codes: ten per account, only their SHA-256 kept, each used once.
create table if not exists app_private.mfa_recovery_codes (
  id uuid primary key default app_hidden.uuid_generate_v7(),
  user_id uuid not null references app_public.users on delete cascade,
  code_hash bytea not null,
  used_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  constraint mfa_recovery_codes_user_id_code_hash_key unique (user_id, code_hash)
);

-- What a first factor (password, provider) hands the client when the account has a second
-- factor: single use, five minutes, for one user. It opens no session; verifyMfa turns it into
-- one. method/identity_id: how the first factor signed in (copied to the session).
create table if not exists app_private.mfa_challenges (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references app_public.users on delete cascade,
  method text not null default 'password' constraint mfa_challenges_method_check check (method in ('password', 'provider', 'sso')),
  identity_id uuid references app_private.identities on delete cascade,
  -- an SSO sign-in's connection, so the session verifyMfa opens still counts for its organization
  sso_connection_id uuid references app_public.sso_connections (id) on delete cascade,
  expires_at timestamptz not null,
  used_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid
);
create index if not exists mfa_challenges_user_id_idx on app_private.mfa_challenges (user_id);
create index if not exists mfa_challenges_identity_id_idx on app_private.mfa_challenges (identity_id);
create index if not exists mfa_challenges_sso_connection_id_idx on app_private.mfa_challenges (sso_connection_id);
create index if not exists mfa_challenges_expires_at_idx on app_private.mfa_challenges (expires_at);

-- WebAuthn challenges: single use, five minutes, bound to the user (null for a passwordless
-- sign-in, whose user is only known from the credential), the relying party and the origin
-- (APP_URL's), and for a second factor to the MFA challenge it answers.
create table if not exists app_private.passkey_challenges (
  id uuid primary key default gen_random_uuid(),
  user_id uuid references app_public.users on delete cascade,
  purpose text not null constraint passkey_challenges_purpose_check check (purpose in ('registration', 'second_factor', 'sign_in', 'step_up')),
  challenge text not null constraint passkey_challenges_challenge_check check (length(challenge) <= 200),
  rp_id text not null constraint passkey_challenges_rp_id_check check (length(rp_id) <= 255),
  origin text not null constraint passkey_challenges_origin_check check (length(origin) <= 500),
  mfa_challenge_id uuid references app_private.mfa_challenges on delete cascade,
  expires_at timestamptz not null,
  used_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid
);
create index if not exists passkey_challenges_user_id_idx on app_private.passkey_challenges (user_id);
create index if not exists passkey_challenges_mfa_challenge_id_idx on app_private.passkey_challenges (mfa_challenge_id);
create index if not exists passkey_challenges_expires_at_idx on app_private.passkey_challenges (expires_at);

-- The assurance level of a session: aal1 (password or provider), aal2 (with a second factor);
-- aal2_at: when a second factor was last given in it (step-up looks at it).
alter table app_private.sessions add column if not exists aal text not null default 'aal1';
alter table app_private.sessions drop constraint if exists sessions_aal_check;
alter table app_private.sessions add constraint sessions_aal_check check (aal in ('aal1', 'aal2'));
alter table app_private.sessions add column if not exists aal2_at timestamptz;
-- a passwordless passkey sign-in is a method of its own
alter table app_private.sessions drop constraint if exists sessions_method_check;
alter table app_private.sessions add constraint sessions_method_check check (method in ('password', 'provider', 'sso', 'passkey'));

-- mySessions shows each session's level.
do $$
begin
  if not exists (select 1 from pg_attribute a join pg_type t on t.typrelid = a.attrelid
                 join pg_namespace n on n.oid = t.typnamespace
                 where n.nspname = 'app_public' and t.typname = 'user_session' and a.attname = 'aal') then
    alter type app_public.user_session add attribute aal text;
  end if;
end;
$$;

-- The organization policy: from mfa_required_at on (null: not required), members see the
-- organization only from an aal2 session. Set to now() + a grace period by setOrganizationMfaRequired.
alter table app_public.organizations add column if not exists mfa_required_at timestamptz;
comment on column app_public.organizations.mfa_required_at is
  'From this time on, members see the organization only from a session signed in with a second factor (null: not required).';

-- What mfaFactors returns.
do $$
begin
  if not exists (select 1 from pg_type t join pg_namespace n on n.oid = t.typnamespace
                 where n.nspname = 'app_public' and t.typname = 'mfa_factor') then
    create type app_public.mfa_factor as (
      id uuid,
      kind text,
      name text,
      created_at timestamptz,
      last_used_at timestamptz
    );
  end if;
  if not exists (select 1 from pg_type t join pg_namespace n on n.oid = t.typnamespace
                 where n.nspname = 'app_public' and t.typname = 'organization_mfa_gap') then
    create type app_public.organization_mfa_gap as (
      organization_id uuid,
      name text,
      slug text,
      mfa_required_at timestamptz
    );
  end if;
end;
$$;
comment on type app_public.mfa_factor is 'A second factor of your account (TOTP app or passkey).';
comment on type app_public.organization_mfa_gap is 'An organization of yours that requires a second factor this session has not given.';

-- Code attempts (TOTP and recovery codes) per account and per client address; servers also
-- write theirs at start-up (RATE_LIMIT_MFA_CODE_USER, RATE_LIMIT_MFA_CODE_ADDRESS).
update app_private.account_settings
set attempt_limits = attempt_limits || '{"mfa_code": {"user": {"max": 10, "seconds": 900}, "address": {"max": 50, "seconds": 900}}}'::jsonb
where not attempt_limits ? 'mfa_code';
update app_private.account_settings
set attempt_limits = attempt_limits || '{"passkey_challenge": {"address": {"max": 60, "seconds": 900}}}'::jsonb
where not attempt_limits ? 'passkey_challenge';

--! split: 140-credit-controls-usage-alerts.sql
-- Usage alerts (issue 21, section 3): thresholds an admin sets on the available balance or on
-- how much of a spend cap is used, the alerts they fired (and the notices of grants about to
-- expire), and each user's switch for the alert emails. Rules: db/functions/140-credit-controls.

do $$
begin
  if not exists (select 1 from pg_type t join pg_namespace n on n.oid = t.typnamespace
                 where n.nspname = 'app_public' and t.typname = 'credit_alert_kind') then
    create type app_public.credit_alert_kind as enum ('low_balance', 'cap_used', 'grant_expiring');
  end if;
end
$$;

-- One threshold: "available at or below balance_at_most" (low_balance) or "percent of the cap
-- cap_id used" (cap_used). armed, last_fired_at and fired_window are the firing state, changed
-- only by the crossing transaction's conditional update (alert-firing.sql).
create table if not exists app_public.credit_alert_thresholds (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  kind app_public.credit_alert_kind not null,
  balance_at_most bigint,
  cap_id uuid,
  percent smallint,
  armed boolean not null default true,
  last_fired_at timestamptz,
  fired_window timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id),
  constraint credit_alert_thresholds_target_check check (
    (kind = 'low_balance' and balance_at_most is not null and cap_id is null and percent is null)
    or (kind = 'cap_used' and cap_id is not null and percent is not null and balance_at_most is null)),
  constraint credit_alert_thresholds_balance_check check (balance_at_most between 0 and 1000000000000),
  constraint credit_alert_thresholds_percent_check check (percent between 1 and 100),
  constraint credit_alert_thresholds_cap_fkey foreign key (organization_id, cap_id)
    references app_public.credit_spend_caps on delete cascade
);
comment on table app_public.credit_alert_thresholds is
  E'@behavior -insert -update -delete\nWhen to alert the admins: the available balance at or below balanceAtMost, or a spend cap percent used. Set by admins (setCreditAlertThreshold).';
comment on column app_public.credit_alert_thresholds.armed is
  E'@behavior -*\nFalse once a low_balance threshold fired, until the balance is above it again (internal).';
comment on column app_public.credit_alert_thresholds.fired_window is
  E'@behavior -*\nThe cap period a cap_used threshold last fired in (internal).';
comment on column app_public.credit_alert_thresholds.last_fired_at is 'When this threshold last fired an alert.';
create unique index if not exists credit_alert_thresholds_balance_idx on app_public.credit_alert_thresholds
  (organization_id, balance_at_most) where kind = 'low_balance';
create unique index if not exists credit_alert_thresholds_cap_idx on app_public.credit_alert_thresholds
  (organization_id, cap_id, percent) where kind = 'cap_used';
create index if not exists credit_alert_thresholds_cap_fkey_idx on app_public.credit_alert_thresholds
  (organization_id, cap_id) where cap_id is not null;

-- Every alert fired, for the client's list (newest first) and the emails. Written only by
-- app_private.record_credit_alert. A grant has at most one expiry notice.
create table if not exists app_public.credit_alerts (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  kind app_public.credit_alert_kind not null,
  threshold_id uuid,
  balance_at_most bigint,
  available bigint,
  cap_id uuid,
  percent smallint,
  cap_spent bigint,
  cap_limit bigint,
  cap_period app_public.credit_spend_cap_period,
  cap_resets_at timestamptz,
  grant_id uuid,
  grant_remaining bigint,
  grant_expires_at timestamptz,
  fired_at timestamptz not null default now(),
  emails_queued_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id),
  constraint credit_alerts_threshold_fkey foreign key (organization_id, threshold_id)
    references app_public.credit_alert_thresholds on delete set null (threshold_id),
  constraint credit_alerts_cap_fkey foreign key (organization_id, cap_id)
    references app_public.credit_spend_caps on delete set null (cap_id),
  constraint credit_alerts_grant_fkey foreign key (organization_id, grant_id)
    references app_public.credit_grants on delete set null (grant_id)
);
comment on table app_public.credit_alerts is
  E'@behavior -insert -update -delete\nAn alert that fired: the balance at or below a threshold (low_balance), a spend cap used to a percent (cap_used), or a grant about to expire (grant_expiring). Emailed to the admins and published on organizationEvents.';
comment on column app_public.credit_alerts.emails_queued_at is
  E'@behavior -*\nWhen the per-admin emails were queued (internal: queued once).';
comment on column app_public.credit_alerts.available is 'The available balance in the transaction that fired the alert.';
create index if not exists credit_alerts_fired_idx on app_public.credit_alerts (organization_id, fired_at desc, id desc);
create index if not exists credit_alerts_threshold_idx on app_public.credit_alerts (organization_id, threshold_id) where threshold_id is not null;
create index if not exists credit_alerts_cap_idx on app_public.credit_alerts (organization_id, cap_id) where cap_id is not null;
create unique index if not exists credit_alerts_grant_idx on app_public.credit_alerts (organization_id, grant_id)
  where kind = 'grant_expiring';
create index if not exists credit_alerts_grant_fkey_idx on app_public.credit_alerts (organization_id, grant_id) where grant_id is not null;

-- Each user turns the credit alert emails off for themselves (setCreditAlertEmails).
alter table app_public.user_settings add column if not exists credit_alert_emails boolean not null default true;
comment on column app_public.user_settings.credit_alert_emails is
  'Whether you get the credit alert emails of the organizations you are an admin or owner of (setCreditAlertEmails).';

--! split: 310-auto-top-up.sql
-- Auto top-up (docs/billing.md, "Auto top-up"): a credit pack's price in money, the payment
-- method an organization saved for off-session charges, its one rule, and every attempt.

-- What a pack costs, so that an off-session PaymentIntent can be made for it without asking
-- Stripe (Checkout reads the price from stripe_price_id; a PaymentIntent needs an amount).
alter table app_public.credit_packages add column if not exists unit_amount bigint;
alter table app_public.credit_packages add column if not exists currency text;
alter table app_public.credit_packages drop constraint if exists credit_packages_unit_amount_check;
alter table app_public.credit_packages add constraint credit_packages_unit_amount_check
  check ((unit_amount is null and currency is null)
         or (unit_amount between 1 and 100000000 and currency ~ '^[a-z]{3}$'));
comment on column app_public.credit_packages.unit_amount is
  'Price of one pack in the currency''s smallest unit (cents); needed for auto top-up.';
comment on column app_public.credit_packages.currency is 'ISO currency code of unit_amount, lowercase.';

-- The card an admin saved through Checkout in setup mode (setup_intent.succeeded): one per
-- organization, the newest by Stripe time wins.
create table if not exists app_private.auto_top_up_payment_methods (
  organization_id uuid primary key references app_public.organizations on delete cascade,
  stripe_payment_method_id text not null,
  stripe_setup_intent_id text not null,
  stripe_customer_id text not null,
  saved_at timestamptz not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  constraint auto_top_up_payment_methods_pm_check check (stripe_payment_method_id ~ '^pm_[A-Za-z0-9_]+$')
);

-- One rule per organization: when available credits fall to or below threshold, buy
-- credit_package_id (quantity 1, or enough to reach target_balance), at most max_per_month
-- attempts and monthly_limit_amount of money per calendar month (UTC).
create table if not exists app_public.auto_top_up_rules (
  organization_id uuid primary key references app_public.organizations on delete cascade,
  enabled boolean not null default true,
  credit_package_id uuid not null references app_public.credit_packages,
  threshold bigint not null,
  target_balance bigint,
  max_per_month int not null,
  monthly_limit_amount bigint not null,
  currency text not null,
  paused_at timestamptz,
  paused_reason text,
  retry_after timestamptz,
  last_decline_code text,
  burst_alerted_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  constraint auto_top_up_rules_threshold_check check (threshold between 0 and 1000000000000),
  constraint auto_top_up_rules_target_check check (target_balance is null or target_balance between threshold + 1 and 1000000000000),
  constraint auto_top_up_rules_max_per_month_check check (max_per_month between 1 and 100),
  constraint auto_top_up_rules_monthly_limit_check check (monthly_limit_amount between 1 and 100000000000),
  constraint auto_top_up_rules_currency_check check (currency ~ '^[a-z]{3}$'),
  constraint auto_top_up_rules_paused_check check ((paused_at is null) = (paused_reason is null))
);
comment on table app_public.auto_top_up_rules is
  E'@behavior -insert -update -delete\nAuto top-up of an organization (one rule each): when available credits fall to or below threshold, buy the credit package with the saved card, within maxPerMonth and monthlyLimitAmount per calendar month (UTC). Set by admins (setAutoTopUp).';
comment on column app_public.auto_top_up_rules.monthly_limit_amount is 'Most money spent on auto top-ups per calendar month, in the currency''s smallest unit.';
comment on column app_public.auto_top_up_rules.paused_reason is 'authentication_required: the bank asked for the cardholder; nothing is charged until that payment completes or a new card is saved.';
comment on column app_public.auto_top_up_rules.retry_after is 'After a declined card, no attempt before this time.';
comment on column app_public.auto_top_up_rules.burst_alerted_at is E'@behavior -*\nWhen the admins were last told about a burst (once per 10 minutes).';
create index if not exists auto_top_up_rules_credit_package_idx on app_public.auto_top_up_rules (credit_package_id);

-- Every charge the rule started. At most one pending or processing per organization (the
-- partial unique index): concurrent spends crossing the threshold make one.
create table if not exists app_public.auto_top_up_attempts (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  status text not null default 'pending',
  credit_package_id uuid not null references app_public.credit_packages,
  quantity int not null,
  credits bigint not null,
  amount bigint not null,
  currency text not null,
  balance_before bigint not null,
  rule_max_per_month int not null,
  rule_monthly_limit_amount bigint not null,
  stripe_payment_intent_id text,
  decline_code text,
  action_url text,
  completed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id),
  constraint auto_top_up_attempts_status_check check (status in ('pending', 'processing', 'succeeded', 'failed', 'requires_action', 'canceled')),
  constraint auto_top_up_attempts_quantity_check check (quantity between 1 and 100),
  constraint auto_top_up_attempts_amounts_check check (credits > 0 and amount > 0 and currency ~ '^[a-z]{3}$')
);
comment on table app_public.auto_top_up_attempts is
  E'@behavior -insert -update -delete\nEach charge auto top-up made: pending (queued), processing (sent to Stripe), succeeded (credits granted), failed (declined), requires_action (the cardholder must complete it at actionUrl), canceled (auto top-up turned off first).';
comment on column app_public.auto_top_up_attempts.amount is 'In the currency''s smallest unit.';
comment on column app_public.auto_top_up_attempts.rule_max_per_month is E'@behavior -*\nThe rule''s maxPerMonth when the attempt started (the nightly check compares with it).';
comment on column app_public.auto_top_up_attempts.rule_monthly_limit_amount is E'@behavior -*\nThe rule''s monthlyLimitAmount when the attempt started.';
create unique index if not exists auto_top_up_attempts_one_open_idx on app_public.auto_top_up_attempts (organization_id)
  where status in ('pending', 'processing');
create unique index if not exists auto_top_up_attempts_payment_intent_key on app_public.auto_top_up_attempts
  (organization_id, stripe_payment_intent_id);
create index if not exists auto_top_up_attempts_organization_created_idx on app_public.auto_top_up_attempts (organization_id, created_at desc);
create index if not exists auto_top_up_attempts_credit_package_idx on app_public.auto_top_up_attempts (credit_package_id);

--! split: 600-webhooks.sql
-- Outbound webhooks (docs/outbound-webhooks.md): endpoints an organization's admins register,
-- their signing secrets, the messages written by the transaction that caused them (an outbox),
-- one delivery per message and endpoint, and every attempt made. Written to run again.

-- How many endpoints an organization may have (null: any number). WEBHOOK_ENDPOINT_LIMIT_REACHED.
alter table app_public.plans add column if not exists max_webhook_endpoints int;
alter table app_public.plans drop constraint if exists plans_max_webhook_endpoints_check;
alter table app_public.plans add constraint plans_max_webhook_endpoints_check check (coalesce(max_webhook_endpoints, 0) >= 0);
comment on column app_public.plans.max_webhook_endpoints is
  'Webhook endpoints an organization on this plan may have, disabled ones included (null: any number). WEBHOOK_ENDPOINT_LIMIT_REACHED past it.';
update app_public.plans set max_webhook_endpoints = case id when 'free' then 3 when 'pro' then 10 else 50 end
where max_webhook_endpoints is null;

-- What the worker tells SQL about where endpoints may point (written by every worker at start-up
-- from WEBHOOK_ALLOW_PRIVATE_ADDRESSES and NODE_ENV), so creation refuses what delivery would.
create table if not exists app_private.webhook_settings (
  id boolean primary key default true,
  allow_private_addresses boolean not null default false,
  allow_http boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  constraint webhook_settings_one_row check (id)
);
insert into app_private.webhook_settings (id) values (true) on conflict (id) do nothing;

create table if not exists app_public.webhook_endpoints (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  url text not null,
  description text not null default '',
  event_types text[] not null default '{}',
  headers jsonb not null default '{}',
  disabled_at timestamptz,
  disabled_reason text,
  failing_since timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id),
  constraint webhook_endpoints_url_check check (length(url) between 8 and 2000),
  constraint webhook_endpoints_description_check check (length(description) <= 500),
  constraint webhook_endpoints_event_types_check check (cardinality(event_types) <= 50),
  constraint webhook_endpoints_headers_check check (jsonb_typeof(headers) = 'object'),
  constraint webhook_endpoints_disabled_check check ((disabled_at is null) = (disabled_reason is null)),
  constraint webhook_endpoints_disabled_reason_check check (disabled_reason in ('admin', 'gone', 'failing'))
);
comment on table app_public.webhook_endpoints is
  E'@behavior -insert -update -delete\nA URL of the organization''s own systems that receives its events, signed (Standard Webhooks). Managed by admins through createWebhookEndpoint, updateWebhookEndpoint, disableWebhookEndpoint, enableWebhookEndpoint, deleteWebhookEndpoint.';
comment on column app_public.webhook_endpoints.event_types is 'The event types it receives; empty: all of them.';
alter table app_public.webhook_endpoints add column if not exists header_names text[] not null default '{}';
comment on column app_public.webhook_endpoints.header_names is 'The names of the custom headers (their values are write-only: they often hold a credential).';
comment on column app_public.webhook_endpoints.headers is E'@behavior -*\nExtra HTTP headers sent with each delivery (at most 10); write-only.';
comment on column app_public.webhook_endpoints.disabled_at is 'Set when disabled: by an admin, by a 410 Gone answer, or after failing for 5 days.';
comment on column app_public.webhook_endpoints.disabled_reason is 'admin, gone (the endpoint answered 410) or failing (every attempt failed for 5 days).';
comment on column app_public.webhook_endpoints.failing_since is 'First failed attempt since the last success; null while healthy.';
create index if not exists webhook_endpoints_id_idx on app_public.webhook_endpoints (id);
create index if not exists webhook_endpoints_organization_created_idx on app_public.webhook_endpoints (organization_id, created_at desc);

-- Signing secrets: the current one (expires_at null) and, for 24 hours after a rotation, the
-- previous ones. Kept as they are because the worker must sign with them; no app role reads them.
create table if not exists app_private.webhook_endpoint_secrets (
  organization_id uuid not null,
  endpoint_id uuid not null,
  id uuid not null default app_hidden.uuid_generate_v7(),
  secret text not null,
  expires_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, endpoint_id, id),
  foreign key (organization_id, endpoint_id) references app_public.webhook_endpoints on delete cascade,
  constraint webhook_endpoint_secrets_secret_check check (secret ~ '^whsec_[A-Za-z0-9+/]{32,88}={0,2}$')
);

create table if not exists app_public.webhook_messages (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  event_type text not null,
  payload jsonb not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id),
  constraint webhook_messages_event_type_check check (length(event_type) between 1 and 100),
  constraint webhook_messages_payload_check check (jsonb_typeof(payload) = 'object')
);
comment on table app_public.webhook_messages is
  E'@behavior -insert -update -delete\nAn event of the organization, written in the transaction that caused it; its id is the webhook-id header. Kept 30 days.';
create index if not exists webhook_messages_organization_created_idx on app_public.webhook_messages (organization_id, created_at desc);
create index if not exists webhook_messages_created_idx on app_public.webhook_messages (created_at);

create table if not exists app_public.webhook_deliveries (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  message_id uuid not null,
  endpoint_id uuid not null,
  status text not null default 'pending',
  attempt_count int not null default 0,
  next_attempt_at timestamptz,
  last_attempt_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id),
  constraint webhook_deliveries_message_fkey foreign key (organization_id, message_id)
    references app_public.webhook_messages (organization_id, id) on delete cascade,
  constraint webhook_deliveries_endpoint_fkey foreign key (organization_id, endpoint_id)
    references app_public.webhook_endpoints (organization_id, id) on delete cascade,
  constraint webhook_deliveries_status_check check (status in ('pending', 'succeeded', 'failed'))
);
comment on table app_public.webhook_deliveries is
  E'@behavior -insert -update -delete\nOne message to one endpoint: pending (an attempt is queued), succeeded or failed (retries exhausted, or the endpoint was disabled).';
comment on column app_public.webhook_deliveries.attempt_count is 'Attempts since it was last queued (a replay starts again at 0).';
create unique index if not exists webhook_deliveries_message_endpoint_key on app_public.webhook_deliveries (organization_id, message_id, endpoint_id);
create index if not exists webhook_deliveries_id_idx on app_public.webhook_deliveries (id);
create index if not exists webhook_deliveries_endpoint_created_idx on app_public.webhook_deliveries (organization_id, endpoint_id, created_at desc);

create table if not exists app_public.webhook_attempts (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  delivery_id uuid not null,
  status_code int,
  duration_ms int not null,
  response_body text,
  error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id),
  constraint webhook_attempts_delivery_fkey foreign key (organization_id, delivery_id)
    references app_public.webhook_deliveries (organization_id, id) on delete cascade,
  constraint webhook_attempts_response_body_check check (length(response_body) <= 4096),
  constraint webhook_attempts_error_check check (length(error) <= 1000),
  constraint webhook_attempts_duration_check check (duration_ms >= 0)
);
comment on table app_public.webhook_attempts is
  E'@behavior -insert -update -delete\nOne HTTP request of a delivery: when, the status code, how long, the first 4 KB of the answer, and the error.';
create index if not exists webhook_attempts_delivery_created_idx on app_public.webhook_attempts (organization_id, delivery_id, created_at);

do $$ begin
  create type app_public.webhook_endpoint_with_secret as (
    webhook_endpoint app_public.webhook_endpoints,
    secret text
  );
exception when duplicate_object then null;
end $$;
comment on type app_public.webhook_endpoint_with_secret is 'An endpoint and its signing secret (shown only here, at creation and rotation).';
comment on column app_public.webhook_endpoint_with_secret.secret is 'whsec_… : verify deliveries with it (any Standard Webhooks library). Shown once.';

-- (an earlier text of this branch had enable_webhook_endpoint(uuid); enabling now takes recover)
drop function if exists app_public.enable_webhook_endpoint(uuid);

-- Requests in flight per organization, across every worker process: a lease per attempt taken
-- before the request and dropped when it is recorded (or left to expire if the worker died).
create table if not exists app_private.webhook_attempt_leases (
  organization_id uuid not null references app_public.organizations on delete cascade,
  delivery_id uuid not null,
  expires_at timestamptz not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, delivery_id)
);
-- (the worker's read of a delivery now takes a lease: new arguments and a busy column)
drop function if exists app_private.webhook_delivery_to_send(uuid, uuid);

-- GraphQL names of the relations: delivery.message, delivery.endpoint, delivery.attempts,
-- message.deliveries, endpoint.deliveries, attempt.delivery.
comment on constraint webhook_deliveries_message_fkey on app_public.webhook_deliveries is
  E'@fieldName message\n@foreignFieldName deliveries';
comment on constraint webhook_deliveries_endpoint_fkey on app_public.webhook_deliveries is
  E'@fieldName endpoint\n@foreignFieldName deliveries';
comment on constraint webhook_attempts_delivery_fkey on app_public.webhook_attempts is
  E'@fieldName delivery\n@foreignFieldName attempts';
