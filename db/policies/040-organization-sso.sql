-- Organization SSO: admins and owners read the organization's domains and its connection (never
-- the connection's secret: no column grant); every change goes through the SECURITY DEFINER
-- functions of db/functions/040-organization-sso (no table write grants). Members see neither.

grant execute on function
  app_public.add_sso_domain(uuid, text),
  app_public.remove_sso_domain(uuid),
  app_public.remove_sso_connection(uuid),
  app_public.set_organization_sso(uuid, boolean, app_public.organization_role),
  app_public.break_sso_glass(uuid, text),
  app_public.sso_domains_verification_record(app_public.sso_domains),
  -- called by the server's verifySsoDomain and setSsoConnection, in the caller's transaction
  app_hidden.confirm_sso_domain(uuid, text[]),
  app_hidden.set_sso_connection(uuid, text, text, bytea)
to app_user;

select app_private.secure_table('app_public.sso_domains');
grant select on app_public.sso_domains to app_user;
create policy select_admin on app_public.sso_domains for select to app_user
  using (organization_id = any (current_setting('tenantbase.admin_organization_ids')::uuid[]));

select app_private.secure_table('app_public.sso_connections');
grant select (organization_id, id, issuer, client_id, created_at, updated_at, created_by) on app_public.sso_connections to app_user;
create policy select_admin on app_public.sso_connections for select to app_user
  using (organization_id = any (current_setting('tenantbase.admin_organization_ids')::uuid[]));
