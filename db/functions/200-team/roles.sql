-- Roles and ownership: changing a role, removing or leaving, transferring ownership; never no owner.

-- Serializes every change of owners in one organization: the organization row is locked
-- (FOR NO KEY UPDATE: does not block inserts of rows that reference it), then owners are counted
-- with a fresh snapshot. Two owners demoting each other at once: the second waits for the first,
-- then counts one owner fewer and gets LAST_OWNER. On a cascade from deleting the organization
-- the row is already gone and there is nothing to protect.
create or replace function app_private.tg_organization_members_keep_owner() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  if old.role <> 'owner' or (tg_op = 'UPDATE' and new.role = 'owner') then
    return coalesce(new, old);
  end if;
  perform 1 from app_public.organizations o where o.id = old.organization_id for no key update;
  if not found then
    return coalesce(new, old);
  end if;
  if not exists (
    select 1 from app_public.organization_members m
    where m.organization_id = old.organization_id and m.role = 'owner' and m.user_id <> old.user_id
  ) then
    perform app_hidden.raise_error('LAST_OWNER',
      'An organization needs at least one owner: make someone else owner first.');
  end if;
  return coalesce(new, old);
end;
$$;

-- Locks the organization for a membership change and returns the caller's role in it (null when
-- not a member). Every function below takes this lock first, then checks rights, so the checks
-- see the result of any change that finished while it waited.
create or replace function app_private.lock_organization_for_member_change(organization_id uuid)
returns app_public.organization_role
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_role app_public.organization_role;
begin
  if app_public.current_user_id() is null then
    perform app_hidden.raise_error('NOT_AUTHENTICATED', 'Sign in as a user to manage members.');
  end if;
  perform 1 from app_public.organizations o
  where o.id = lock_organization_for_member_change.organization_id and o.deleted_at is null
  for no key update;
  if not found then
    perform app_hidden.raise_error('NOT_FOUND', 'No such organization.');
  end if;
  select m.role into v_role from app_public.organization_members m
  where m.organization_id = lock_organization_for_member_change.organization_id
    and m.user_id = app_public.current_user_id();
  if v_role is null then
    perform app_hidden.raise_error('NOT_FOUND', 'No such organization.');
  end if;
  return v_role;
end;
$$;

create or replace function app_public.change_member_role(
  organization_id uuid,
  user_id uuid,
  role app_public.organization_role
) returns app_public.organization_members
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_caller_role app_public.organization_role;
  v_member app_public.organization_members;
begin
  v_caller_role := app_private.lock_organization_for_member_change(change_member_role.organization_id);
  if v_caller_role < 'admin' then
    perform app_hidden.raise_error('FORBIDDEN', 'Only admins and owners can change roles.');
  end if;
  if change_member_role.role is null then
    perform app_hidden.raise_error('INVALID_ROLE', 'Give a role: member, admin or owner.');
  end if;
  select * into v_member from app_public.organization_members m
  where m.organization_id = change_member_role.organization_id and m.user_id = change_member_role.user_id
  for update;
  if not found then
    perform app_hidden.raise_error('NOT_FOUND', 'No such member.');
  end if;
  if (change_member_role.role = 'owner' or v_member.role = 'owner') and v_caller_role <> 'owner' then
    perform app_hidden.raise_error('FORBIDDEN', 'Only owners can make owners or change an owner''s role.');
  end if;
  if v_member.role = change_member_role.role then
    return v_member;
  end if;
  update app_public.organization_members m set role = change_member_role.role
  where m.organization_id = change_member_role.organization_id and m.user_id = change_member_role.user_id
  returning * into v_member;
  return v_member;
end;
$$;
comment on function app_public.change_member_role(uuid, uuid, app_public.organization_role) is
  E'@resultFieldName membership\nChanges a member''s role. Admins change roles up to admin; only owners make owners or change an owner''s role; the last owner cannot be demoted (LAST_OWNER).';

create or replace function app_public.remove_member(organization_id uuid, user_id uuid) returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_caller_role app_public.organization_role;
  v_member app_public.organization_members;
begin
  v_caller_role := app_private.lock_organization_for_member_change(remove_member.organization_id);
  if v_caller_role < 'admin' then
    perform app_hidden.raise_error('FORBIDDEN', 'Only admins and owners can remove members.');
  end if;
  select * into v_member from app_public.organization_members m
  where m.organization_id = remove_member.organization_id and m.user_id = remove_member.user_id
  for update;
  if not found then
    perform app_hidden.raise_error('NOT_FOUND', 'No such member.');
  end if;
  if v_member.role = 'owner' and v_caller_role <> 'owner' then
    perform app_hidden.raise_error('FORBIDDEN', 'Only owners can remove an owner.');
  end if;
  delete from app_public.organization_members m
  where m.organization_id = remove_member.organization_id and m.user_id = remove_member.user_id;
  return true;
end;
$$;
comment on function app_public.remove_member(uuid, uuid) is
  E'@resultFieldName success\nRemoves a member (admins and owners; only owners remove owners; never the last owner: LAST_OWNER). Frees their seat.';

create or replace function app_public.leave_organization(organization_id uuid) returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  perform app_private.lock_organization_for_member_change(leave_organization.organization_id);
  delete from app_public.organization_members m
  where m.organization_id = leave_organization.organization_id and m.user_id = app_public.current_user_id();
  return true;
end;
$$;
comment on function app_public.leave_organization(uuid) is
  E'@resultFieldName success\nLeaves the organization (the last owner cannot: LAST_OWNER).';

create or replace function app_public.transfer_ownership(organization_id uuid, user_id uuid) returns app_public.organization_members
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_caller_role app_public.organization_role;
  v_member app_public.organization_members;
begin
  perform app_hidden.assert_recent_second_factor(); -- step-up (050-mfa/step-up.sql)
  v_caller_role := app_private.lock_organization_for_member_change(transfer_ownership.organization_id);
  if v_caller_role <> 'owner' then
    perform app_hidden.raise_error('FORBIDDEN', 'Only an owner can transfer ownership.');
  end if;
  if transfer_ownership.user_id = app_public.current_user_id() then
    perform app_hidden.raise_error('INVALID_TARGET', 'You are already an owner.');
  end if;
  select * into v_member from app_public.organization_members m
  where m.organization_id = transfer_ownership.organization_id and m.user_id = transfer_ownership.user_id
  for update;
  if not found then
    perform app_hidden.raise_error('NOT_FOUND', 'No such member: ownership goes to an existing member.');
  end if;
  update app_public.organization_members m set role = 'owner'
  where m.organization_id = transfer_ownership.organization_id and m.user_id = transfer_ownership.user_id
  returning * into v_member;
  update app_public.organization_members m set role = 'admin'
  where m.organization_id = transfer_ownership.organization_id and m.user_id = app_public.current_user_id();
  perform app_private.record_audit_event(transfer_ownership.organization_id, 'organization.ownership_transferred',
    'user', transfer_ownership.user_id, jsonb_build_object('from', app_public.current_user_id()));
  return v_member;
end;
$$;
comment on function app_public.transfer_ownership(uuid, uuid) is
  E'@resultFieldName membership\nMakes another member owner and the caller admin (owners only).';

create or replace trigger _500_keep_owner before update of role or delete on app_public.organization_members
  for each row execute function app_private.tg_organization_members_keep_owner();
