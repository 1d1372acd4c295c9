-- Organizations: what a valid one is, who may change it, and creating one (its creator becomes owner).

create or replace function app_private.tg_organizations_validate() returns trigger
  language plpgsql volatile
  set search_path = pg_catalog, public
as $$
begin
  new.name := app_hidden.clean_name(new.name, 'Organization name');
  return new;
end;
$$;

-- A member who tries to rename their organization got a silent null from updateOrganization
-- (the admin-only UPDATE policy hid the row). Members may now reach the row for UPDATE, and
-- this trigger answers FORBIDDEN with a stable code unless the caller is an admin or owner.
-- Callers without a user (jobs, the owner role) are not affected.
create or replace function app_private.tg_organizations_require_admin() returns trigger
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

-- How many organizations on the free plan the user owns that are live or can still come back:
-- deleted ones within the restore window (200-team/organization-lifecycle.sql) count, because
-- restoreOrganization brings them back with their credits. Each free organization got its monthly
-- allowance when it was made, so counting only live ones let create -> delete -> create farm an
-- allowance per cycle (issue 25, A3: 381 cycles, 38,200 credits) and restore them all past the limit.
-- Counting what can come back bounds a person to max_owned_organizations free organizations, and
-- so allowances, per restore window (30 days): a deleted one holds its place until it is purged.
-- except_id leaves one organization out (the one being restored).
create or replace function app_private.owned_free_organizations(user_id uuid, except_id uuid default null) returns int
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
begin
  -- (PL/pgSQL: organization_plan and the restore window are declared by later domains)
  return (
    select count(*)::int
    from app_public.organization_members m
    join app_public.organizations o on o.id = m.organization_id
    where m.user_id = owned_free_organizations.user_id and m.role = 'owner'
      and o.id is distinct from owned_free_organizations.except_id
      and (o.deleted_at is null or o.deleted_at > now() - app_hidden.organization_restore_window())
      and (app_private.organization_plan(o.id)).id = 'free');
end;
$$;

-- ORGANIZATION_LIMIT_REACHED when the user already owns the free plan's max_owned_organizations
-- (live or restorable; except_id left out). Locks the user's row first, so two concurrent
-- creations or restorations by one user count each other.
create or replace function app_private.assert_free_organization_available(user_id uuid, except_id uuid default null) returns void
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_plan app_public.plans;
  v_owned int;
begin
  select p.* into v_plan from app_public.plans p where p.id = 'free';
  if v_plan.max_owned_organizations is null then
    return;
  end if;
  perform 1 from app_public.users u where u.id = assert_free_organization_available.user_id for update;
  v_owned := app_private.owned_free_organizations(assert_free_organization_available.user_id,
                                                 assert_free_organization_available.except_id);
  if v_owned >= v_plan.max_owned_organizations then
    perform app_hidden.raise_error('ORGANIZATION_LIMIT_REACHED',
      format('You already own %s organizations on the %s plan (deleted ones count until they can no longer be restored, 30 days), the most it allows; upgrade one, or restore a deleted one instead.', v_owned, v_plan.name));
  end if;
end;
$$;

create or replace function app_public.create_organization(name text) returns app_public.organizations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_org app_public.organizations;
  v_attempt int := 0;
  v_name text;
begin
  if app_public.current_user_id() is null then
    perform app_hidden.raise_error('NOT_AUTHENTICATED', 'Sign in first.');
  end if;
  -- open to unverified users unless VERIFIED_EMAIL_REQUIRED_FOR names organizations
  perform app_hidden.require_verified_email('organizations');
  v_name := app_hidden.clean_name(create_organization.name, 'Organization name');
  -- Every new organization starts on the free plan and gets its monthly credits: a user may own
  -- only so many organizations on it, deleted-but-restorable ones included.
  perform app_private.assert_free_organization_available(app_public.current_user_id());
  loop
    begin
      insert into app_public.organizations (slug, name)
      values (app_private.unique_slug(v_name), v_name)
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

create or replace trigger _010_validate before insert or update of name on app_public.organizations
  for each row execute function app_private.tg_organizations_validate();

create or replace trigger _005_require_admin before update of name on app_public.organizations
  for each row execute function app_private.tg_organizations_require_admin();
