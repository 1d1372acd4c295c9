--! Previous: -
--! Hash: sha1:48f3d0e19de08dae1e7865e35484564818f96ee9
--! Message: foundation

-- Foundation: schemas, helpers, users and sessions, organizations and their members, audit log.
-- Grants and RLS policies for these tables live in db/policies (re-applied after migrations).

--------------------------------------------------------------------------------------------------
-- Extensions and schemas
--------------------------------------------------------------------------------------------------

create extension if not exists pgcrypto with schema public;
create extension if not exists citext with schema public;

-- Nothing is reachable unless granted: no CREATE in public, and functions we create are not
-- executable by PUBLIC by default (each grant is explicit, in db/policies).
revoke all on schema public from public;
grant usage on schema public to app_anonymous, app_user;
alter default privileges revoke execute on functions from public;

-- app_public: exposed through GraphQL. app_hidden: helpers the app roles may call (ids, errors,
-- slugs) that are not part of the API. app_private: secrets and internals, never granted.
create schema app_public;
create schema app_hidden;
create schema app_private;
grant usage on schema app_public, app_hidden to app_anonymous, app_user;

-- The hash of the policy files last applied (see db/migrate.ts).
create table app_private.policy_state (
  id boolean primary key default true check (id),
  hash text not null,
  applied_at timestamptz not null
);

--------------------------------------------------------------------------------------------------
-- Helpers
--------------------------------------------------------------------------------------------------

-- Used by every file in db/policies: puts a table back to "nothing allowed" so that the file
-- that follows is the whole truth about who may do what. RLS is enabled and forced (the owner
-- too is subject to policies), app roles lose every privilege, every policy is dropped, and the
-- owner gets back the one policy that lets migrations, jobs and SECURITY DEFINER functions work.
create function app_private.secure_table(tbl regclass) returns void
  language plpgsql volatile
  set search_path = pg_catalog, public
as $$
declare
  v_policy name;
begin
  execute format('alter table %s enable row level security', tbl);
  execute format('alter table %s force row level security', tbl);
  execute format('revoke all on table %s from public, app_anonymous, app_user, app_authenticator', tbl);
  for v_policy in select polname from pg_policy where polrelid = tbl loop
    execute format('drop policy %I on %s', v_policy, tbl);
  end loop;
  execute format('create policy owner_all on %s for all to app_owner using (true) with check (true)', tbl);
end;
$$;

-- UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits. Time-ordered, so new rows
-- land at the right-hand edge of every index on id. PostgreSQL 18 has uuidv7(); 15 does not.
create function app_hidden.uuid_generate_v7() returns uuid
  language sql volatile parallel safe
as $$
  select encode(
    set_bit(
      set_bit(
        overlay(uuid_send(gen_random_uuid())
                placing substring(int8send(floor(extract(epoch from clock_timestamp()) * 1000)::bigint) from 3)
                from 1 for 6),
        52, 1),
      53, 1),
    'hex')::uuid;
$$;
comment on function app_hidden.uuid_generate_v7() is 'A time-ordered UUID (version 7).';

-- Every business-rule violation is raised through this one helper: SQLSTATE TB000 marks it as
-- public, DETAIL carries the stable code. The server passes these to the client as
-- extensions.code and masks every other error (server/errors.ts).
create function app_hidden.raise_error(code text, message text) returns void
  language plpgsql volatile
as $$
begin
  raise exception using errcode = 'TB000', message = message, detail = code;
end;
$$;
comment on function app_hidden.raise_error(text, text) is
  'Raises a business error whose code (e.g. INSUFFICIENT_CREDITS) reaches the GraphQL client.';

-- Slugs: lowercase a-z, 0-9 and single hyphens, 3-48 characters.
create function app_hidden.slugify(value text) returns text
  language sql immutable strict parallel safe
as $$
  select left(trim(both '-' from regexp_replace(lower(value), '[^a-z0-9]+', '-', 'g')), 40);
$$;

--------------------------------------------------------------------------------------------------
-- Identity of the caller (transaction-local settings set by the server for each request)
--------------------------------------------------------------------------------------------------

create function app_public.current_user_id() returns uuid
  language sql stable parallel safe
as $$
  select nullif(current_setting('jwt.claims.user_id', true), '')::uuid;
$$;
comment on function app_public.current_user_id() is E'@behavior -*\nThe signed-in user''s id, or null.';

create function app_public.current_session_id() returns uuid
  language sql stable parallel safe
as $$
  select nullif(current_setting('jwt.claims.session_id', true), '')::uuid;
$$;
comment on function app_public.current_session_id() is E'@behavior -*\nThe current session''s id, or null.';

--------------------------------------------------------------------------------------------------
-- Audit columns
--------------------------------------------------------------------------------------------------

-- created_at / created_by are set once on insert and kept on update; updated_at moves on every
-- update. Clients have no column privileges on them; this trigger is the only writer.
create function app_private.tg_audit_columns() returns trigger
  language plpgsql volatile
  set search_path = pg_catalog, public
as $$
begin
  if tg_op = 'INSERT' then
    new.created_at := now();
    new.updated_at := now();
    new.created_by := coalesce(app_public.current_user_id(), new.created_by);
  else
    new.created_at := old.created_at;
    new.created_by := old.created_by;
    -- strictly increasing, even for two updates in one transaction
    new.updated_at := greatest(now(), old.updated_at + interval '1 millisecond');
  end if;
  return new;
end;
$$;
comment on function app_private.tg_audit_columns() is
  'Maintains created_at, created_by and updated_at; clients cannot write them.';

--------------------------------------------------------------------------------------------------
-- Users, secrets, sessions
--------------------------------------------------------------------------------------------------

create table app_public.users (
  id uuid primary key default app_hidden.uuid_generate_v7(),
  email citext not null,
  name text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  constraint users_email_key unique (email),
  constraint users_email_check check (length(email) <= 254 and email ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$'),
  constraint users_name_check check (length(name) between 1 and 100 and name = btrim(name))
);
comment on table app_public.users is 'A person who can sign in.';
comment on column app_public.users.email is 'Unique, case-insensitive.';
create trigger _100_audit_columns before insert or update on app_public.users
  for each row execute function app_private.tg_audit_columns();

create table app_private.user_secrets (
  user_id uuid primary key references app_public.users on delete cascade,
  password_hash text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid
);
create trigger _100_audit_columns before insert or update on app_private.user_secrets
  for each row execute function app_private.tg_audit_columns();

-- A signed-in device. Tokens name their session; revoking it (logout) kills the token at once.
create table app_private.sessions (
  id uuid primary key default app_hidden.uuid_generate_v7(),
  user_id uuid not null references app_public.users on delete cascade,
  expires_at timestamptz not null,
  revoked_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid
);
create index sessions_user_id_idx on app_private.sessions (user_id);
create trigger _100_audit_columns before insert or update on app_private.sessions
  for each row execute function app_private.tg_audit_columns();

-- The token the server checks on every request: live means not revoked and not expired.
-- SECURITY DEFINER so the server's middleware can ask as app_anonymous without reading
-- app_private itself.
create function app_hidden.session_is_live(session_id uuid, user_id uuid) returns boolean
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select exists (
    select 1 from app_private.sessions s
    where s.id = session_is_live.session_id
      and s.user_id = session_is_live.user_id
      and s.revoked_at is null
      and s.expires_at > now()
  );
$$;

--------------------------------------------------------------------------------------------------
-- Organizations and members
--------------------------------------------------------------------------------------------------

create type app_public.organization_role as enum ('member', 'admin', 'owner');
comment on type app_public.organization_role is 'Ordered: owner > admin > member.';

create table app_public.organizations (
  id uuid primary key default app_hidden.uuid_generate_v7(),
  slug text not null,
  name text not null,
  plan_id text not null default 'free',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  deleted_at timestamptz,
  constraint organizations_slug_key unique (slug),
  constraint organizations_slug_check check (length(slug) between 3 and 48 and slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
  constraint organizations_name_check check (length(name) between 1 and 100 and name = btrim(name))
);
comment on table app_public.organizations is 'A tenant: every tenant-owned row belongs to one.';
comment on column app_public.organizations.slug is 'Unique, URL-safe name, generated from the name.';
comment on column app_public.organizations.deleted_at is 'Set when soft-deleted; hidden from lists.';
create trigger _100_audit_columns before insert or update on app_public.organizations
  for each row execute function app_private.tg_audit_columns();

create table app_public.organization_members (
  organization_id uuid not null references app_public.organizations on delete cascade,
  user_id uuid not null references app_public.users on delete cascade,
  role app_public.organization_role not null default 'member',
  invited_by uuid references app_public.users on delete set null,
  joined_at timestamptz not null default now(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, user_id)
);
comment on table app_public.organization_members is 'Who belongs to which organization, and as what.';
create index organization_members_user_id_idx on app_public.organization_members (user_id);
create index organization_members_invited_by_idx on app_public.organization_members (invited_by);
create trigger _100_audit_columns before insert or update on app_public.organization_members
  for each row execute function app_private.tg_audit_columns();

-- The organizations the caller belongs to (not deleted), as an array so a policy can write
-- `organization_id = any ((select app_public.current_user_organization_ids()))`: evaluated once
-- per statement and usable as an index condition. SECURITY DEFINER: reading memberships from
-- inside a policy on organization_members must not recurse into that policy.
create function app_public.current_user_organization_ids(
  min_role app_public.organization_role default 'member'
) returns uuid[]
  language sql stable security definer parallel safe
  set search_path = pg_catalog, public
as $$
  select coalesce(array_agg(m.organization_id), '{}')
  from app_public.organization_members m
  join app_public.organizations o on o.id = m.organization_id
  where m.user_id = app_public.current_user_id()
    and m.role >= current_user_organization_ids.min_role
    and o.deleted_at is null;
$$;
comment on function app_public.current_user_organization_ids(app_public.organization_role) is
  E'@behavior -*\nIds of the organizations the caller belongs to with at least min_role.';

-- Users the caller may see: themselves and the members of their organizations.
create function app_hidden.current_user_visible_user_ids() returns uuid[]
  language sql stable security definer parallel safe
  set search_path = pg_catalog, public
as $$
  select array(
    select app_public.current_user_id()
    union
    select m.user_id
    from app_public.organization_members m
    where m.organization_id = any (app_public.current_user_organization_ids())
  );
$$;

--------------------------------------------------------------------------------------------------
-- Audit log
--------------------------------------------------------------------------------------------------

create table app_public.audit_events (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  action text not null,
  target_type text not null,
  target_id uuid,
  details jsonb not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id)
);
comment on table app_public.audit_events is
  E'Who changed what in an organization (members, roles, settings). Append-only.\n@behavior -insert -update -delete';
comment on column app_public.audit_events.created_by is 'The user who made the change (null for jobs).';
create trigger _100_audit_columns before insert or update on app_public.audit_events
  for each row execute function app_private.tg_audit_columns();

create function app_private.tg_append_only() returns trigger
  language plpgsql volatile
as $$
begin
  raise exception 'table %.% is append-only', tg_table_schema, tg_table_name
    using errcode = 'insufficient_privilege';
end;
$$;
create trigger _050_append_only before update or delete on app_public.audit_events
  for each row when (current_setting('tenantbase.allow_prune', true) is distinct from 'on')
  execute function app_private.tg_append_only();

create function app_private.record_audit_event(
  organization_id uuid, action text, target_type text, target_id uuid, details jsonb
) returns void
  language sql volatile security definer
  set search_path = pg_catalog, public
as $$
  insert into app_public.audit_events (organization_id, action, target_type, target_id, details)
  values (organization_id, action, target_type, target_id, coalesce(details, '{}'));
$$;

create function app_private.tg_organization_members_audit() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  if tg_op = 'INSERT' then
    perform app_private.record_audit_event(new.organization_id, 'member.added', 'user', new.user_id,
      jsonb_build_object('role', new.role));
  elsif tg_op = 'UPDATE' then
    if new.role is distinct from old.role then
      perform app_private.record_audit_event(new.organization_id, 'member.role_changed', 'user', new.user_id,
        jsonb_build_object('from', old.role, 'to', new.role));
    end if;
  elsif tg_op = 'DELETE' then
    -- a cascade from deleting the organization leaves nothing to log into
    if exists (select 1 from app_public.organizations o where o.id = old.organization_id) then
      perform app_private.record_audit_event(old.organization_id, 'member.removed', 'user', old.user_id,
        jsonb_build_object('role', old.role));
    end if;
  end if;
  return null;
end;
$$;
create trigger _900_audit after insert or update or delete on app_public.organization_members
  for each row execute function app_private.tg_organization_members_audit();

--------------------------------------------------------------------------------------------------
-- Validation that generated mutations also pass through
--------------------------------------------------------------------------------------------------

create function app_private.tg_organizations_validate() returns trigger
  language plpgsql volatile
  set search_path = pg_catalog, public
as $$
begin
  if new.name is null or length(btrim(new.name)) = 0 or length(btrim(new.name)) > 100 then
    perform app_hidden.raise_error('INVALID_NAME', 'Organization name must be 1 to 100 characters.');
  end if;
  new.name := btrim(new.name);
  return new;
end;
$$;
create trigger _010_validate before insert or update of name on app_public.organizations
  for each row execute function app_private.tg_organizations_validate();

--------------------------------------------------------------------------------------------------
-- Authentication
--------------------------------------------------------------------------------------------------

-- What PostGraphile signs into a JWT (gather.pgJwtTypes); aud and iss come from the server's
-- sign options.
create type app_public.jwt_token as (
  role text,
  sub uuid,
  session_id uuid,
  exp bigint
);

create function app_private.start_session(user_id uuid) returns app_public.jwt_token
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_session app_private.sessions;
begin
  insert into app_private.sessions (user_id, expires_at)
  values (start_session.user_id, now() + interval '1 day')
  returning * into v_session;
  return ('app_user', v_session.user_id, v_session.id, extract(epoch from v_session.expires_at)::bigint)::app_public.jwt_token;
end;
$$;

create function app_hidden.normalize_email(email text) returns text
  language sql immutable parallel safe
as $$
  select lower(btrim(email));
$$;

create function app_public.register(email text, password text, name text) returns app_public.jwt_token
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_email text := app_hidden.normalize_email(register.email);
  v_name text := btrim(register.name);
  v_user_id uuid;
begin
  if v_email is null or length(v_email) > 254 or v_email !~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$' then
    perform app_hidden.raise_error('INVALID_EMAIL', 'That is not a valid email address.');
  end if;
  if register.password is null or length(register.password) < 8 then
    perform app_hidden.raise_error('WEAK_PASSWORD', 'Password must be at least 8 characters.');
  end if;
  if length(register.password) > 72 then
    -- bcrypt ignores everything after 72 bytes; refuse rather than silently truncate
    perform app_hidden.raise_error('WEAK_PASSWORD', 'Password must be at most 72 characters.');
  end if;
  if v_name is null or length(v_name) = 0 or length(v_name) > 100 then
    perform app_hidden.raise_error('INVALID_NAME', 'Name must be 1 to 100 characters.');
  end if;
  begin
    insert into app_public.users (email, name) values (v_email, v_name) returning id into v_user_id;
  exception when unique_violation then
    perform app_hidden.raise_error('EMAIL_TAKEN', 'An account with that email already exists.');
  end;
  insert into app_private.user_secrets (user_id, password_hash)
  values (v_user_id, crypt(register.password, gen_salt('bf', 10)));
  return app_private.start_session(v_user_id);
end;
$$;
comment on function app_public.register(text, text, text) is
  E'@resultFieldName jwtToken\nCreates an account and signs it in; the payload''s jwtToken goes in the Authorization header.';

create function app_public.authenticate(email text, password text) returns app_public.jwt_token
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid;
  v_hash text;
begin
  select u.id, s.password_hash into v_user_id, v_hash
  from app_public.users u
  join app_private.user_secrets s on s.user_id = u.id
  where u.email = app_hidden.normalize_email(authenticate.email);

  -- The same work and the same answer whether or not the email exists.
  if v_hash is null then
    perform crypt(coalesce(authenticate.password, ''), gen_salt('bf', 10));
    perform app_hidden.raise_error('INVALID_CREDENTIALS', 'Incorrect email or password.');
  end if;
  if authenticate.password is null or crypt(authenticate.password, v_hash) <> v_hash then
    perform app_hidden.raise_error('INVALID_CREDENTIALS', 'Incorrect email or password.');
  end if;
  return app_private.start_session(v_user_id);
end;
$$;
comment on function app_public.authenticate(text, text) is
  E'@resultFieldName jwtToken\nSigns in with email and password.';

create function app_public.logout() returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  update app_private.sessions
  set revoked_at = now()
  where id = app_public.current_session_id() and revoked_at is null;
  return found;
end;
$$;
comment on function app_public.logout() is E'@resultFieldName success\nRevokes the current session: its token stops working at once.';

create function app_public."current_user"() returns app_public.users
  language sql stable
  set search_path = pg_catalog, public
as $$
  select u.* from app_public.users u where u.id = app_public.current_user_id();
$$;
comment on function app_public."current_user"() is 'The signed-in user, or null.';

--------------------------------------------------------------------------------------------------
-- Organization lifecycle
--------------------------------------------------------------------------------------------------

-- A slug for a new organization: the name's slug, padded to 3 characters, with a numeric
-- suffix when taken. The unique constraint is the real arbiter (see the retry below).
create function app_private.unique_slug(base text) returns text
  language plpgsql volatile
  set search_path = pg_catalog, public
as $$
declare
  v_base text := coalesce(nullif(app_hidden.slugify(base), ''), 'org');
  v_candidate text;
  v_n int := 1;
begin
  if length(v_base) < 3 then
    v_base := v_base || '-org';
  end if;
  v_candidate := v_base;
  while exists (select 1 from app_public.organizations where slug = v_candidate) loop
    v_n := v_n + 1;
    v_candidate := v_base || '-' || v_n;
  end loop;
  return v_candidate;
end;
$$;

create function app_public.create_organization(name text) returns app_public.organizations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_org app_public.organizations;
  v_attempt int := 0;
begin
  if app_public.current_user_id() is null then
    perform app_hidden.raise_error('NOT_AUTHENTICATED', 'Sign in first.');
  end if;
  if create_organization.name is null or length(btrim(create_organization.name)) not between 1 and 100 then
    perform app_hidden.raise_error('INVALID_NAME', 'Organization name must be 1 to 100 characters.');
  end if;
  loop
    begin
      insert into app_public.organizations (slug, name)
      values (app_private.unique_slug(create_organization.name), btrim(create_organization.name))
      returning * into v_org;
      exit;
    exception when unique_violation then
      -- another transaction took the same slug between our check and our insert
      v_attempt := v_attempt + 1;
      if v_attempt >= 5 then raise; end if;
    end;
  end loop;
  insert into app_public.organization_members (organization_id, user_id, role)
  values (v_org.id, app_public.current_user_id(), 'owner');
  return v_org;
end;
$$;
comment on function app_public.create_organization(text) is
  E'@resultFieldName organization\nCreates an organization with the caller as its owner.';

create function app_public.delete_organization(id uuid) returns app_public.organizations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_org app_public.organizations;
begin
  if not delete_organization.id = any (app_public.current_user_organization_ids()) then
    perform app_hidden.raise_error('NOT_FOUND', 'No such organization.');
  end if;
  if not delete_organization.id = any (app_public.current_user_organization_ids('owner')) then
    perform app_hidden.raise_error('FORBIDDEN', 'Only an owner can delete the organization.');
  end if;
  update app_public.organizations o set deleted_at = now()
  where o.id = delete_organization.id
  returning * into v_org;
  perform app_private.record_audit_event(v_org.id, 'organization.deleted', 'organization', v_org.id, '{}');
  return v_org;
end;
$$;
comment on function app_public.delete_organization(uuid) is
  E'@resultFieldName organization\nSoft-deletes an organization (owners only); it disappears from every list.';
