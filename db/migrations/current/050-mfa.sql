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
