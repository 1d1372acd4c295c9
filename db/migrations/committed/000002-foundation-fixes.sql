--! Previous: sha1:48f3d0e19de08dae1e7865e35484564818f96ee9
--! Hash: sha1:11b8ed41c2b44fd3f05bf78a1f7cc3ca7120c30a
--! Message: foundation fixes

--! split: 010-foundation-fixes.sql
-- Concurrent createOrganization calls with the same name collided on the slug more often than
-- the retry loop could absorb (12 at once: some failed). Serialize slug choice per base slug
-- with a transaction-scoped advisory lock: the next caller waits until the first commits, then
-- sees its slug and takes the next suffix.
create or replace function app_private.unique_slug(base text) returns text
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
  perform pg_advisory_xact_lock(hashtext('tenantbase:slug:' || v_base));
  v_candidate := v_base;
  while exists (select 1 from app_public.organizations where slug = v_candidate) loop
    v_n := v_n + 1;
    v_candidate := v_base || '-' || v_n;
  end loop;
  return v_candidate;
end;
$$;

-- A member who tries to rename their organization got a silent null from updateOrganization
-- (the admin-only UPDATE policy hid the row). Members may now reach the row for UPDATE, and
-- this trigger answers FORBIDDEN with a stable code unless the caller is an admin or owner.
-- Callers without a user (jobs, the owner role) are not affected.
create function app_private.tg_organizations_require_admin() returns trigger
  language plpgsql volatile
  set search_path = pg_catalog, public
as $$
begin
  if app_public.current_user_id() is not null
     and not new.id = any (app_public.current_user_organization_ids('admin')) then
    perform app_hidden.raise_error('FORBIDDEN', 'Only admins and owners can change the organization.');
  end if;
  return new;
end;
$$;
create trigger _005_require_admin before update of name on app_public.organizations
  for each row execute function app_private.tg_organizations_require_admin();

-- The helpers every request calls, as PL/pgSQL: SECURITY DEFINER SQL functions are never
-- inlined, so their bodies were parsed and planned on each call; PL/pgSQL caches its plans per
-- connection. (current_user_organization_ids gets the same treatment where the API-key version
-- replaces it.)
create or replace function app_hidden.current_user_visible_user_ids() returns uuid[]
  language plpgsql stable security definer parallel safe
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid := app_public.current_user_id();
begin
  return array(
    select v_user_id
    union
    select m.user_id
    from app_public.organization_members m
    where m.organization_id = any (app_public.current_user_organization_ids())
  );
end;
$$;

create or replace function app_hidden.session_is_live(session_id uuid, user_id uuid) returns boolean
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
begin
  return exists (
    select 1 from app_private.sessions s
    where s.id = session_is_live.session_id
      and s.user_id = session_is_live.user_id
      and s.revoked_at is null
      and s.expires_at > now()
  );
end;
$$;
