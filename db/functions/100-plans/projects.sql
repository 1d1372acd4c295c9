-- Projects: what a valid one is, counting them, soft delete and restore.

create or replace function app_private.tg_projects_validate() returns trigger
  language plpgsql volatile
  set search_path = pg_catalog, public
as $$
begin
  -- A signed-in caller naming another tenant's (or an unknown) organization gets a clear
  -- NOT_FOUND here rather than the row-level-security violation that would follow.
  if tg_op = 'INSERT' and app_public.current_user_id() is not null
     and not new.organization_id = any (app_public.current_user_organization_ids()) then
    perform app_hidden.raise_error('NOT_FOUND', 'No such organization.');
  end if;
  new.name := app_hidden.clean_name(new.name, 'Project name');
  if length(new.description) > 2000 then
    perform app_hidden.raise_error('INVALID_DESCRIPTION', 'Project description must be at most 2000 characters.');
  end if;
  if tg_op = 'UPDATE' and new.organization_id is distinct from old.organization_id then
    perform app_hidden.raise_error('INVALID_ORGANIZATION', 'A project cannot move to another organization.');
  end if;
  return new;
end;
$$;

create or replace function app_private.tg_projects_project_count() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_old_counts boolean := tg_op in ('UPDATE', 'DELETE') and old.deleted_at is null;
  v_new_counts boolean := tg_op in ('UPDATE', 'INSERT') and new.deleted_at is null;
begin
  if v_new_counts and not v_old_counts then
    perform app_private.assert_project_available(new.organization_id, 1);
    -- created or restored by a client: the hourly and stored-rows quotas (quotas.sql)
    perform app_private.assert_project_quota(new.organization_id, tg_op = 'INSERT');
    update app_public.usage_counters c set project_count = c.project_count + 1
    where c.organization_id = new.organization_id;
  elsif v_old_counts and not v_new_counts then
    update app_public.usage_counters c set project_count = c.project_count - 1
    where c.organization_id = old.organization_id;
  end if;
  return null;
end;
$$;

-- Soft delete and restore (admins and owners). SECURITY DEFINER: the caller has no privilege on
-- deleted_at; the role check is here.
create or replace function app_public.delete_project(id uuid) returns app_public.projects
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_project app_public.projects;
begin
  select * into v_project from app_public.projects p
  where p.id = delete_project.id
    and p.organization_id = any (app_public.current_user_organization_ids())
  for update;
  if not found then
    perform app_hidden.raise_error('NOT_FOUND', 'No such project.');
  end if;
  if not v_project.organization_id = any (app_public.current_user_organization_ids('admin')) then
    perform app_hidden.raise_error('FORBIDDEN', 'Only admins and owners can delete projects.');
  end if;
  if v_project.deleted_at is not null then
    return v_project;
  end if;
  update app_public.projects p set deleted_at = now()
  where p.organization_id = v_project.organization_id and p.id = v_project.id
  returning * into v_project;
  perform app_private.record_audit_event(v_project.organization_id, 'project.deleted', 'project', v_project.id, '{}');
  return v_project;
end;
$$;
comment on function app_public.delete_project(uuid) is
  E'@resultFieldName project\nSoft-deletes a project (admins and owners); it stops counting against the plan.';

create or replace function app_public.restore_project(id uuid) returns app_public.projects
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_project app_public.projects;
begin
  select * into v_project from app_public.projects p
  where p.id = restore_project.id
    and p.organization_id = any (app_public.current_user_organization_ids('admin'))
  for update;
  if not found then
    perform app_hidden.raise_error('NOT_FOUND', 'No such project.');
  end if;
  if v_project.deleted_at is null then
    return v_project;
  end if;
  update app_public.projects p set deleted_at = null
  where p.organization_id = v_project.organization_id and p.id = v_project.id
  returning * into v_project;
  perform app_private.record_audit_event(v_project.organization_id, 'project.restored', 'project', v_project.id, '{}');
  return v_project;
end;
$$;
comment on function app_public.restore_project(uuid) is
  E'@resultFieldName project\nRestores a soft-deleted project (admins and owners), if the plan has room (PROJECT_LIMIT_REACHED). A restore counts as a creation in the hourly quota (QUOTA_EXCEEDED).';

create or replace trigger _010_validate before insert or update on app_public.projects
  for each row execute function app_private.tg_projects_validate();

create or replace trigger _200_project_count after insert or update or delete on app_public.projects
  for each row execute function app_private.tg_projects_project_count();
