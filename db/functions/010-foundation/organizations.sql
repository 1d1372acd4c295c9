-- Organizations: what a valid one is, who may change it, and creating one (its creator becomes owner).

create or replace function app_private.tg_organizations_validate() returns trigger
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

create or replace function app_public.create_organization(name text) returns app_public.organizations
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

create or replace trigger _010_validate before insert or update of name on app_public.organizations
  for each row execute function app_private.tg_organizations_validate();

create or replace trigger _005_require_admin before update of name on app_public.organizations
  for each row execute function app_private.tg_organizations_require_admin();
