-- Deleting an organization (soft), listing and restoring deleted ones, and purging them for good.

-- deleteOrganization(input: {}) passed a null id: `not null = any (…)` is null, not true, so
-- neither check raised, nothing was updated, and recording the audit event failed on a null
-- organization_id — a masked internal error instead of NOT_FOUND. A null id is now NOT_FOUND.
create or replace function app_public.delete_organization(id uuid) returns app_public.organizations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_org app_public.organizations;
begin
  perform app_hidden.assert_recent_second_factor(); -- step-up (050-mfa/step-up.sql)
  if delete_organization.id is null
     or not delete_organization.id = any (app_public.current_user_organization_ids()) then
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

create or replace function app_hidden.organization_restore_window() returns interval
  language sql immutable parallel safe
as $$
  select interval '30 days';
$$;

create or replace function app_public.deleted_organizations() returns setof app_public.organizations
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select o.* from app_public.organizations o
  join app_public.organization_members m on m.organization_id = o.id
  where m.user_id = app_public.current_user_id()
    and m.role = 'owner'
    and o.deleted_at is not null
    and o.deleted_at > now() - app_hidden.organization_restore_window()
  order by o.deleted_at desc;
$$;
comment on function app_public.deleted_organizations() is
  'Organizations you own that were deleted less than 30 days ago (restore them with restoreOrganization).';

create or replace function app_public.restore_organization(id uuid) returns app_public.organizations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_org app_public.organizations;
  v_user_id uuid := app_public.current_user_id();
begin
  if v_user_id is null then
    perform app_hidden.raise_error('NOT_AUTHENTICATED', 'Sign in as a user to restore an organization.');
  end if;
  select o.* into v_org from app_public.organizations o
  where o.id = restore_organization.id
    and exists (select 1 from app_public.organization_members m
                where m.organization_id = o.id and m.user_id = v_user_id)
  for no key update;
  if not found then
    perform app_hidden.raise_error('NOT_FOUND', 'No such organization.');
  end if;
  if not exists (select 1 from app_public.organization_members m
                 where m.organization_id = v_org.id and m.user_id = v_user_id and m.role = 'owner') then
    perform app_hidden.raise_error('FORBIDDEN', 'Only an owner can restore the organization.');
  end if;
  if v_org.deleted_at is null then
    return v_org;
  end if;
  if v_org.deleted_at <= now() - app_hidden.organization_restore_window() then
    perform app_hidden.raise_error('RESTORE_WINDOW_PASSED', 'Organizations can be restored for 30 days after deletion.');
  end if;
  -- A restorable free organization already counts toward the owner's free-organization limit
  -- (010-foundation/organizations.sql), so this refuses only when it did not count when deleted
  -- (it was on a paid plan then) and the owner has since filled the free places.
  if (app_private.organization_plan(v_org.id)).id = 'free' then
    perform app_private.assert_free_organization_available(v_user_id, v_org.id);
  end if;
  update app_public.organizations o set deleted_at = null where o.id = v_org.id returning * into v_org;
  perform app_private.record_audit_event(v_org.id, 'organization.restored', 'organization', v_org.id,
    jsonb_build_object('by', v_user_id));
  return v_org;
end;
$$;
comment on function app_public.restore_organization(uuid) is
  E'@resultFieldName organization\nRestores a deleted organization (owners, within 30 days: RESTORE_WINDOW_PASSED after; ORGANIZATION_LIMIT_REACHED if it would make more free organizations than the free plan allows).';

-- The daily job: organizations deleted more than 30 days ago, with everything in them.
-- tenantbase.allow_prune lets the cascade delete append-only rows (the audit log) for this
-- transaction only.
create or replace function app_private.hard_delete_organizations() returns int
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_organization_id uuid;
  v_count int := 0;
  v_state text;
  v_message text;
begin
  perform set_config('tenantbase.allow_prune', 'on', true);
  -- One organization at a time, each in a subtransaction: one that cannot be deleted is rolled
  -- back alone and reported (400-operations/batch-failures.sql); the others are deleted.
  for v_organization_id in
    select o.id from app_public.organizations o
    where o.deleted_at is not null and o.deleted_at <= now() - app_hidden.organization_restore_window()
    order by o.deleted_at, o.id
  loop
    begin
      delete from app_public.organizations o where o.id = v_organization_id;
      v_count := v_count + 1;
    exception when others then
      get stacked diagnostics v_state = returned_sqlstate, v_message = message_text;
      perform app_private.record_organization_failure('hard_delete_organizations', v_organization_id, v_state, v_message);
    end;
  end loop;
  perform set_config('tenantbase.allow_prune', '', true);
  return v_count;
end;
$$;
comment on function app_private.hard_delete_organizations() is
  'Deletes organizations soft-deleted more than 30 days ago, cascading through every tenant table. Returns how many.';
