-- Users, organizations, members, audit log: who may see and change what.
-- Tenant policies compare with the caller's organizations, read once per transaction by
-- app_hidden.start_request() (db/functions/010-foundation/request.sql) into a setting:
-- `organization_id = any (current_setting('tenantbase.organization_ids')::uuid[])` (or
-- tenantbase.admin_organization_ids for admin-only tables). No subquery and no function of ours:
-- evaluated once per scan as an index condition, and the form Citus accepts on distributed tables.

-- Helpers every role calls (directly or from defaults, triggers and policies).
grant execute on function
  app_hidden.uuid_generate_v7(),
  app_hidden.raise_error(text, text),
  app_hidden.raise_error_with(text, text, jsonb),
  app_hidden.slugify(text),
  app_hidden.normalize_email(text),
  app_hidden.clean_name(text, text),
  app_hidden.current_user_visible_user_ids(),
  app_public.current_user_id(),
  app_public.current_session_id(),
  app_public.current_user_organization_ids(app_public.organization_role),
  app_hidden.start_request(),
  app_hidden.refresh_caller_organizations()
to app_anonymous, app_user;

-- Signing up and in: the only things an anonymous caller can do.
grant execute on function
  app_public.register(text, text, text),
  app_public.authenticate(text, text),
  app_public."current_user"()
to app_anonymous, app_user;

grant execute on function
  app_public.logout(),
  app_public.create_organization(text),
  app_public.delete_organization(uuid)
to app_user;

-- users: yourself and the members of your organizations; you may rename yourself.
-- app_anonymous holds SELECT only so that currentUser can be asked without a token; no policy
-- lets it see a row.
select app_private.secure_table('app_public.users');
grant select on app_public.users to app_anonymous, app_user;
grant update (name) on app_public.users to app_user;
create policy select_visible on app_public.users for select to app_user
  using (id = any ((select app_hidden.current_user_visible_user_ids())::uuid[]));
create policy update_self on app_public.users for update to app_user
  using (id = (select app_public.current_user_id()))
  with check (id = (select app_public.current_user_id()));

-- organizations: members see theirs; admins and owners rename them (members reach the row, and
-- the trigger _005_require_admin answers FORBIDDEN). Creation and deletion go through
-- create_organization / delete_organization.
select app_private.secure_table('app_public.organizations');
grant select on app_public.organizations to app_user;
grant update (name) on app_public.organizations to app_user;
create policy select_member on app_public.organizations for select to app_user
  using (id = any (current_setting('tenantbase.organization_ids')::uuid[]));
create policy update_member on app_public.organizations for update to app_user
  using (id = any (current_setting('tenantbase.organization_ids')::uuid[]))
  with check (id = any (current_setting('tenantbase.admin_organization_ids')::uuid[]));

-- organization_members: members see who else is in their organizations.
select app_private.secure_table('app_public.organization_members');
grant select on app_public.organization_members to app_user;
create policy select_member on app_public.organization_members for select to app_user
  using (organization_id = any (current_setting('tenantbase.organization_ids')::uuid[]));

-- audit_events: admins and owners read their organization's log; nobody writes it directly.
select app_private.secure_table('app_public.audit_events');
grant select on app_public.audit_events to app_user;
create policy select_admin on app_public.audit_events for select to app_user
  using (organization_id = any (current_setting('tenantbase.admin_organization_ids')::uuid[]));
