-- Team lifecycle: invitations, roles and ownership, slugs, settings, API keys, deleted
-- organizations. Every write goes through a SECURITY DEFINER mutation that checks the caller's
-- role; the tables themselves grant reads only.

grant execute on function
  app_hidden.is_reserved_slug(text),
  app_hidden.current_api_key_id(),
  app_hidden.organization_restore_window()
to app_anonymous, app_user;

grant execute on function
  app_public.invite_member(uuid, text, app_public.organization_role),
  app_public.accept_invitation(text),
  app_public.revoke_invitation(uuid),
  app_public.resend_invitation(uuid),
  app_public.my_pending_invitations(),
  app_public.change_member_role(uuid, uuid, app_public.organization_role),
  app_public.remove_member(uuid, uuid),
  app_public.leave_organization(uuid),
  app_public.transfer_ownership(uuid, uuid),
  app_public.change_organization_slug(uuid, text),
  app_public.organization_by_slug(text),
  app_public.update_organization_settings(uuid, jsonb),
  app_public.organization_settings_branding_settings(app_public.organization_settings),
  app_public.organization_settings_feature_settings(app_public.organization_settings),
  app_public.update_user_settings(jsonb),
  app_public.my_settings(),
  app_public.create_api_key(uuid, text, app_public.organization_role, timestamptz),
  app_public.revoke_api_key(uuid),
  app_public.deleted_organizations(),
  app_public.restore_organization(uuid)
to app_user;

-- invitation_sends: internal counts for the sending limits; no app role reads them.
select app_private.secure_table('app_private.invitation_sends');

-- invitations: admins and owners see their organization's (with status and expiry).
select app_private.secure_table('app_public.invitations');
grant select on app_public.invitations to app_user;
create policy select_admin on app_public.invitations for select to app_user
  using (organization_id = any (current_setting('tenantbase.admin_organization_ids')::uuid[]));

-- organization_slug_redirects: members see their organization's old slug.
select app_private.secure_table('app_public.organization_slug_redirects');
grant select on app_public.organization_slug_redirects to app_user;
create policy select_member on app_public.organization_slug_redirects for select to app_user
  using (organization_id = any (current_setting('tenantbase.organization_ids')::uuid[]));

-- organization_settings: members read; admins and owners change through updateOrganizationSettings.
select app_private.secure_table('app_public.organization_settings');
grant select on app_public.organization_settings to app_user;
create policy select_member on app_public.organization_settings for select to app_user
  using (organization_id = any (current_setting('tenantbase.organization_ids')::uuid[]));

-- user_settings: your own only.
select app_private.secure_table('app_public.user_settings');
grant select on app_public.user_settings to app_user;
create policy select_self on app_public.user_settings for select to app_user
  using (user_id = (select app_public.current_user_id()));

-- api_keys: admins and owners see their organization's keys (never the secrets, which live in
-- app_private).
select app_private.secure_table('app_public.api_keys');
grant select on app_public.api_keys to app_user;
create policy select_admin on app_public.api_keys for select to app_user
  using (organization_id = any (current_setting('tenantbase.admin_organization_ids')::uuid[]));
