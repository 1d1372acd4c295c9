-- Organization API keys: server-to-server access for one organization, with the key's role
-- (member or admin), under the same RLS policies as users.
--
-- The secret ("tb_live_" + 256 random bits in hex) is returned once by createApiKey; only its
-- SHA-256 is stored, in app_private. The server's auth middleware hands the secret to
-- app_hidden.authenticate_api_key (as the owner role), which finds the key by hash, refuses
-- revoked/expired keys, counts the call, and answers the key id. The request then runs as
-- app_user with the setting jwt.claims.api_key_id and no user id; current_user_organization_ids()
-- (replaced below) answers only the key's organization, and only when the key's role is at least
-- the role asked for. Everything else follows from the policies.

create table app_public.api_keys (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  name text not null,
  role app_public.organization_role not null default 'member',
  secret_prefix text not null,
  expires_at timestamptz,
  last_used_at timestamptz,
  revoked_at timestamptz,
  revoked_by uuid references app_public.users on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id),
  constraint api_keys_name_check check (length(name) between 1 and 100 and name = btrim(name)),
  constraint api_keys_role_check check (role in ('member', 'admin'))
);
comment on table app_public.api_keys is
  E'@behavior -insert -update -delete\nA key a customer''s backend uses to call the API for one organization (Authorization: Bearer tb_live_…).';
comment on column app_public.api_keys.role is 'member or admin: what the key may do, as a member with that role would.';
comment on column app_public.api_keys.secret_prefix is 'The first characters of the secret, to recognise a key.';
comment on column app_public.api_keys.expires_at is 'After this the key is refused (INVALID_TOKEN); null: never expires.';
comment on column app_public.api_keys.last_used_at is 'Last request made with the key (updated at most once a minute).';
comment on column app_public.api_keys.revoked_at is 'Set by revokeApiKey; the key is refused from then on.';
create index api_keys_id_idx on app_public.api_keys (id);
create index api_keys_organization_created_idx on app_public.api_keys (organization_id, created_at desc);
create index api_keys_revoked_by_idx on app_public.api_keys (revoked_by);
create trigger _100_audit_columns before insert or update on app_public.api_keys
  for each row execute function app_private.tg_audit_columns();

-- Looked up by hash alone (the secret is all a request carries).
create table app_private.api_key_secrets (
  organization_id uuid not null,
  api_key_id uuid not null,
  secret_hash bytea not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, api_key_id),
  foreign key (organization_id, api_key_id) references app_public.api_keys on delete cascade,
  constraint api_key_secrets_secret_hash_key unique (secret_hash)
);
create trigger _100_audit_columns before insert or update on app_private.api_key_secrets
  for each row execute function app_private.tg_audit_columns();

create function app_hidden.current_api_key_id() returns uuid
  language sql stable parallel safe
as $$
  select nullif(current_setting('jwt.claims.api_key_id', true), '')::uuid;
$$;
comment on function app_hidden.current_api_key_id() is 'The API key the request was made with, or null.';

-- Same signature and, for users, the same answer as the foundation's version. For a request
-- made with an API key (and no user): the key's organization, if the key is live, the
-- organization is not deleted and the key's role is at least min_role.
create or replace function app_public.current_user_organization_ids(
  min_role app_public.organization_role default 'member'
) returns uuid[]
  -- PL/pgSQL, not SQL: a SECURITY DEFINER SQL function is never inlined, so PostgreSQL parsed
  -- and planned its body on every call (2-6 ms per statement under load, measured in
  -- bench/rls-helper.ts); PL/pgSQL keeps its plans per connection.
  language plpgsql stable security definer parallel safe
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid := app_public.current_user_id();
  v_api_key_id uuid;
  v_ids uuid[];
begin
  if v_user_id is not null then
    select coalesce(array_agg(m.organization_id), '{}') into v_ids
    from app_public.organization_members m
    join app_public.organizations o on o.id = m.organization_id
    where m.user_id = v_user_id
      and m.role >= min_role
      and o.deleted_at is null;
    return v_ids;
  end if;
  v_api_key_id := app_hidden.current_api_key_id();
  if v_api_key_id is not null then
    select coalesce(array_agg(k.organization_id), '{}') into v_ids
    from app_public.api_keys k
    join app_public.organizations o on o.id = k.organization_id
    where k.id = v_api_key_id
      and k.revoked_at is null
      and (k.expires_at is null or k.expires_at > now())
      and k.role >= min_role
      and o.deleted_at is null;
    return v_ids;
  end if;
  return '{}'::uuid[];
end;
$$;

create type app_public.api_key_with_secret as (
  api_key app_public.api_keys,
  secret text
);
comment on type app_public.api_key_with_secret is 'A new API key and its secret (shown only here; the database keeps its hash).';
comment on column app_public.api_key_with_secret.secret is 'Send as Authorization: Bearer <secret>. Shown once.';

create function app_public.create_api_key(
  organization_id uuid,
  name text,
  role app_public.organization_role default 'member',
  expires_at timestamptz default null
) returns app_public.api_key_with_secret
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_secret text := 'tb_live_' || encode(gen_random_bytes(32), 'hex');
  v_key app_public.api_keys;
begin
  perform app_private.assert_team_admin(create_api_key.organization_id, 'create API keys');
  if coalesce(create_api_key.role, 'member') not in ('member', 'admin') then
    perform app_hidden.raise_error('INVALID_ROLE', 'An API key is member or admin.');
  end if;
  if create_api_key.name is null or length(btrim(create_api_key.name)) not between 1 and 100 then
    perform app_hidden.raise_error('INVALID_NAME', 'API key name must be 1 to 100 characters.');
  end if;
  if create_api_key.expires_at is not null and create_api_key.expires_at <= now() then
    perform app_hidden.raise_error('INVALID_EXPIRY', 'expiresAt must be in the future.');
  end if;
  if not exists (select 1 from app_public.organization_settings s
                 where s.organization_id = create_api_key.organization_id
                   and (s.features ->> 'apiAccessEnabled')::boolean) then
    perform app_hidden.raise_error('API_ACCESS_DISABLED', 'API access is switched off in the organization''s settings.');
  end if;
  insert into app_public.api_keys (organization_id, name, role, secret_prefix, expires_at)
  values (create_api_key.organization_id, btrim(create_api_key.name), coalesce(create_api_key.role, 'member'),
          left(v_secret, 12), create_api_key.expires_at)
  returning * into v_key;
  insert into app_private.api_key_secrets (organization_id, api_key_id, secret_hash)
  values (v_key.organization_id, v_key.id, digest(v_secret, 'sha256'));
  perform app_private.record_audit_event(v_key.organization_id, 'api_key.created', 'api_key', v_key.id,
    jsonb_build_object('name', v_key.name, 'role', v_key.role, 'expires_at', v_key.expires_at));
  return (v_key, v_secret)::app_public.api_key_with_secret;
end;
$$;
comment on function app_public.create_api_key(uuid, text, app_public.organization_role, timestamptz) is
  E'@flattenPayload\nCreates an API key for the organization (admins and owners). The secret is in the payload, once.';

create function app_public.revoke_api_key(id uuid) returns app_public.api_keys
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_key app_public.api_keys;
begin
  select * into v_key from app_public.api_keys k where k.id = revoke_api_key.id;
  if not found or not v_key.organization_id = any (app_public.current_user_organization_ids()) then
    perform app_hidden.raise_error('NOT_FOUND', 'No such API key.');
  end if;
  perform app_private.assert_team_admin(v_key.organization_id, 'revoke API keys');
  update app_public.api_keys k set revoked_at = coalesce(k.revoked_at, now()),
    revoked_by = coalesce(k.revoked_by, app_public.current_user_id())
  where k.organization_id = v_key.organization_id and k.id = v_key.id
  returning * into v_key;
  perform app_private.record_audit_event(v_key.organization_id, 'api_key.revoked', 'api_key', v_key.id,
    jsonb_build_object('name', v_key.name));
  return v_key;
end;
$$;
comment on function app_public.revoke_api_key(uuid) is
  E'@resultFieldName apiKey\nRevokes an API key (admins and owners): the next request made with it is refused.';

-- Called by the server (as the owner role, never granted to app roles) for each request that
-- carries a tb_live_ secret. Answers nothing for unknown, revoked or expired keys, keys of a
-- deleted organization and organizations whose apiAccessEnabled is off. Counts the call in the
-- organization's api_calls and touches last_used_at at most once a minute (a hot key must not
-- turn every request into a write on one row).
create function app_hidden.authenticate_api_key(secret text)
returns table (api_key_id uuid, organization_id uuid, role app_public.organization_role)
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_key app_public.api_keys;
begin
  if secret is null or secret !~ '^tb_live_[0-9a-f]{64}$' then
    return;
  end if;
  select k.* into v_key
  from app_private.api_key_secrets s
  join app_public.api_keys k on k.organization_id = s.organization_id and k.id = s.api_key_id
  join app_public.organizations o on o.id = k.organization_id
  join app_public.organization_settings st on st.organization_id = k.organization_id
  where s.secret_hash = digest(authenticate_api_key.secret, 'sha256')
    and k.revoked_at is null
    and (k.expires_at is null or k.expires_at > now())
    and o.deleted_at is null
    and (st.features ->> 'apiAccessEnabled')::boolean;
  if not found then
    return;
  end if;
  update app_public.api_keys k set last_used_at = now()
  where k.organization_id = v_key.organization_id and k.id = v_key.id
    and (k.last_used_at is null or k.last_used_at < now() - interval '1 minute');
  perform app_private.count_api_call(v_key.organization_id);
  api_key_id := v_key.id;
  organization_id := v_key.organization_id;
  role := v_key.role;
  return next;
end;
$$;
comment on function app_hidden.authenticate_api_key(text) is
  'For the server only: the live API key with this secret (counting the call), or no row.';
