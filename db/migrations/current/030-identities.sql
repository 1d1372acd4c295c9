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
