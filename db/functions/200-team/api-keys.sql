-- API keys: creating (shown once, stored hashed), revoking, and authenticating one.

create or replace function app_public.create_api_key(
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
  perform app_hidden.require_verified_email('api_keys');
  if coalesce(create_api_key.role, 'member') not in ('member', 'admin') then
    perform app_hidden.raise_error('INVALID_ROLE', 'An API key is member or admin.');
  end if;
  perform app_hidden.clean_name(create_api_key.name, 'API key name');
  if create_api_key.expires_at is not null and create_api_key.expires_at <= now() then
    perform app_hidden.raise_error('INVALID_EXPIRY', 'expiresAt must be in the future.');
  end if;
  if not exists (select 1 from app_public.organization_settings s
                 where s.organization_id = create_api_key.organization_id
                   and (s.features ->> 'apiAccessEnabled')::boolean) then
    perform app_hidden.raise_error('API_ACCESS_DISABLED', 'API access is switched off in the organization''s settings.');
  end if;
  insert into app_public.api_keys (organization_id, name, role, secret_prefix, expires_at)
  values (create_api_key.organization_id, app_hidden.clean_name(create_api_key.name, 'API key name'), coalesce(create_api_key.role, 'member'),
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

create or replace function app_public.revoke_api_key(id uuid) returns app_public.api_keys
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
create or replace function app_hidden.authenticate_api_key(secret text)
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
