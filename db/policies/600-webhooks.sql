-- Outbound webhooks: members of an organization read its endpoints, messages, deliveries and
-- attempts (the delivery log); admins and owners change endpoints only through the SECURITY
-- DEFINER mutations of db/functions/600-webhooks (no table write grants). Secrets and settings
-- live in app_private: no app role reads them.

grant execute on function
  app_public.webhook_event_types()
to app_anonymous, app_user;

grant execute on function
  app_public.create_webhook_endpoint(uuid, text, text, text[], jsonb),
  app_public.update_webhook_endpoint(uuid, text, text, text[], jsonb),
  app_public.disable_webhook_endpoint(uuid),
  app_public.enable_webhook_endpoint(uuid, boolean),
  app_public.delete_webhook_endpoint(uuid),
  app_public.rotate_webhook_secret(uuid),
  app_public.send_test_webhook(uuid),
  app_public.replay_webhook_message(uuid),
  app_public.recover_webhook_endpoint(uuid, timestamptz)
to app_user;

select app_private.secure_table('app_private.webhook_settings');
select app_private.secure_table('app_private.webhook_endpoint_secrets');
select app_private.secure_table('app_private.webhook_attempt_leases');

-- webhook_endpoints: every column but headers (custom headers often carry a credential, e.g.
-- Authorization: they are written, never read back; header_names lists their names).
select app_private.secure_table('app_public.webhook_endpoints');
grant select (organization_id, id, url, description, event_types, header_names, disabled_at, disabled_reason, failing_since,
              created_at, updated_at, created_by) on app_public.webhook_endpoints to app_user;
create policy select_member on app_public.webhook_endpoints for select to app_user
  using (organization_id = any (current_setting('tenantbase.organization_ids')::uuid[]));

select app_private.secure_table('app_public.webhook_messages');
grant select on app_public.webhook_messages to app_user;
create policy select_member on app_public.webhook_messages for select to app_user
  using (organization_id = any (current_setting('tenantbase.organization_ids')::uuid[]));

select app_private.secure_table('app_public.webhook_deliveries');
grant select on app_public.webhook_deliveries to app_user;
create policy select_member on app_public.webhook_deliveries for select to app_user
  using (organization_id = any (current_setting('tenantbase.organization_ids')::uuid[]));

select app_private.secure_table('app_public.webhook_attempts');
grant select on app_public.webhook_attempts to app_user;
create policy select_member on app_public.webhook_attempts for select to app_user
  using (organization_id = any (current_setting('tenantbase.organization_ids')::uuid[]));
