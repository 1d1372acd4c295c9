-- API keys: creating (shown once, stored hashed, at most the plan's max_api_keys live at once),
-- revoking, authenticating one, and how a key ends with its creator.
--
-- A key acts for its organization, but never with more than its creator may do now:
-- - removal: when its creator leaves or is removed from the organization, or deletes their
--   account, the keys they created are revoked in the same transaction (audit: api_key.revoked
--   with reason creator_removed / creator_deleted);
-- - demotion: a key keeps working, but its effective role is capped at request time at its
--   creator's current role (app_hidden.refresh_caller_organizations, 010-foundation/request.sql):
--   an admin key made by an admin who is now a member acts as a member key; promoted again, it
--   acts as admin again. Read in each request's own transaction, so a demotion racing with a
--   request or with the key's creation can never leave a key above its creator; the cost is one
--   primary-key probe of organization_members per request. The same check refuses, at
--   authentication, a key whose creator is no longer a member (e.g. a key created while its
--   creator was being removed, which the revocation did not see).

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
  perform app_hidden.assert_recent_second_factor(); -- step-up (050-mfa/step-up.sql)
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
  perform app_private.assert_api_key_available(create_api_key.organization_id);
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
  E'@flattenPayload\nCreates an API key for the organization (admins and owners). The secret is in the payload, once. API_KEY_LIMIT_REACHED when the plan''s live keys are all taken. The key never acts with more than its creator''s current role, and is revoked when its creator leaves the organization.';

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
-- deleted organization, keys whose creator is no longer a member of it, and organizations whose
-- apiAccessEnabled is off. Counts the call in the
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
  join app_public.organization_members m on m.organization_id = k.organization_id and m.user_id = k.created_by
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

-- Revokes the live keys a user created, in one organization or (organization_id null) in all,
-- recording why. Returns how many.
create or replace function app_private.revoke_api_keys_of_creator(user_id uuid, organization_id uuid, reason text)
  returns int
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_key app_public.api_keys;
  v_count int := 0;
begin
  for v_key in
    update app_public.api_keys k set revoked_at = now(), revoked_by = app_public.current_user_id()
    where k.created_by = revoke_api_keys_of_creator.user_id
      and (revoke_api_keys_of_creator.organization_id is null or k.organization_id = revoke_api_keys_of_creator.organization_id)
      and k.revoked_at is null
    returning k.*
  loop
    v_count := v_count + 1;
    -- (nothing to log into when the organization itself is being deleted)
    if exists (select 1 from app_public.organizations o where o.id = v_key.organization_id) then
      perform app_private.record_audit_event(v_key.organization_id, 'api_key.revoked', 'api_key', v_key.id,
        jsonb_build_object('name', v_key.name, 'reason', reason));
    end if;
  end loop;
  return v_count;
end;
$$;
comment on function app_private.revoke_api_keys_of_creator(uuid, uuid, text) is
  'Revokes the live API keys a user created (in one organization, or all when organization_id is null).';

-- A member leaves or is removed (also when their account is deleted): their keys go with them.
create or replace function app_private.tg_organization_members_revoke_api_keys() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  perform app_private.revoke_api_keys_of_creator(old.user_id, old.organization_id, 'creator_removed');
  return null;
end;
$$;

-- An account deleted: its keys in every organization, including ones soft-deleted with it (a
-- restored organization must not bring them back).
create or replace function app_private.tg_users_revoke_api_keys() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  perform app_private.revoke_api_keys_of_creator(new.id, null, 'creator_deleted');
  return null;
end;
$$;

create or replace trigger _210_revoke_api_keys after delete on app_public.organization_members
  for each row execute function app_private.tg_organization_members_revoke_api_keys();

create or replace trigger _210_revoke_api_keys after update of deleted_at on app_public.users
  for each row when (old.deleted_at is null and new.deleted_at is not null)
  execute function app_private.tg_users_revoke_api_keys();
