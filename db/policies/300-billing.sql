-- Billing: subscriptions, invoices and credit packages are written only by the Stripe event job
-- (as the owner); app roles read them. The event log and customers live in app_private.

-- Anonymous callers may call them too, to be told NOT_AUTHENTICATED.
grant execute on function
  app_hidden.assert_billing_admin(uuid),
  app_hidden.checkout_target(uuid, uuid, text),
  app_hidden.set_stripe_customer(uuid, text),
  app_hidden.billing_portal_customer(uuid)
to app_anonymous, app_user;

-- credit_packages: the price list of credit packs; everyone signed in reads the ones on sale.
select app_private.secure_table('app_public.credit_packages');
grant select on app_public.credit_packages to app_user;
create policy select_active on app_public.credit_packages for select to app_user using (active);

-- subscriptions: members read their organization's; nobody writes through the API.
select app_private.secure_table('app_public.subscriptions');
grant select on app_public.subscriptions to app_user;
create policy select_member on app_public.subscriptions for select to app_user
  using (organization_id = any (current_setting('tenantbase.organization_ids')::uuid[]));

-- invoices: admins and owners read their organization's billing history.
select app_private.secure_table('app_public.invoices');
grant select on app_public.invoices to app_user;
create policy select_admin on app_public.invoices for select to app_user
  using (organization_id = any (current_setting('tenantbase.admin_organization_ids')::uuid[]));
