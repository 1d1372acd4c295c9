--! Previous: sha1:3356ddb3ac565b6f2db1ee27a0cc2a28064b1843
--! Hash: sha1:770c5cc29c3922fb54f5ecb69a5d5711d461f15e
--! Message: delete organization null id

--! split: 1-delete-organization-null-id.sql
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
