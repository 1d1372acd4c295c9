-- Auto top-up: admins and owners read the rule and the attempts (billing); every change goes
-- through set_auto_top_up / disable_auto_top_up (as the caller, checked there), the spend
-- trigger, the worker and the Stripe event job (as the owner). No INSERT, UPDATE or DELETE grant.

select app_private.secure_table('app_public.auto_top_up_rules');
grant select on app_public.auto_top_up_rules to app_user;
create policy select_admin on app_public.auto_top_up_rules for select to app_user
  using (organization_id = any (current_setting('tenantbase.admin_organization_ids')::uuid[]));

select app_private.secure_table('app_public.auto_top_up_attempts');
grant select on app_public.auto_top_up_attempts to app_user;
create policy select_admin on app_public.auto_top_up_attempts for select to app_user
  using (organization_id = any (current_setting('tenantbase.admin_organization_ids')::uuid[]));

-- The saved card's Stripe id: only the owner role (the worker) reads it.
select app_private.secure_table('app_private.auto_top_up_payment_methods');

grant execute on function
  app_public.set_auto_top_up(uuid, uuid, numeric, int, numeric, numeric),
  app_public.disable_auto_top_up(uuid),
  app_public.auto_top_up_rules_payment_method_saved(app_public.auto_top_up_rules),
  app_hidden.auto_top_up_setup_target(uuid)
to app_user;
-- Anonymous callers may call it too, to be told NOT_AUTHENTICATED (as checkout_target).
grant execute on function app_hidden.auto_top_up_setup_target(uuid) to app_anonymous;
