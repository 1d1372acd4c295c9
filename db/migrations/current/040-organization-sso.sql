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
