-- Credits: members read their organization's account, ledger, grants and reservations; every
-- change goes through the SECURITY DEFINER functions (reserve / capture / release here, grants
-- from billing code and jobs as the owner).

grant execute on function
  app_hidden.assert_valid_amount(numeric),
  app_hidden.assert_valid_idempotency_key(text, boolean)
to app_user;

grant execute on function
  app_public.reserve_credits(uuid, numeric, text, int),
  app_public.capture_credits(uuid, numeric, text),
  app_public.release_credits(uuid, text)
to app_user;

select app_private.secure_table('app_public.credit_accounts');
grant select on app_public.credit_accounts to app_user;
create policy select_member on app_public.credit_accounts for select to app_user
  using (organization_id = any (current_setting('tenantbase.organization_ids')::uuid[]));

select app_private.secure_table('app_public.credit_ledger');
grant select on app_public.credit_ledger to app_user;
create policy select_member on app_public.credit_ledger for select to app_user
  using (organization_id = any (current_setting('tenantbase.organization_ids')::uuid[]));

select app_private.secure_table('app_public.credit_grants');
grant select on app_public.credit_grants to app_user;
create policy select_member on app_public.credit_grants for select to app_user
  using (organization_id = any (current_setting('tenantbase.organization_ids')::uuid[]));

select app_private.secure_table('app_public.credit_reservations');
grant select on app_public.credit_reservations to app_user;
create policy select_member on app_public.credit_reservations for select to app_user
  using (organization_id = any (current_setting('tenantbase.organization_ids')::uuid[]));

select app_private.secure_table('app_public.credit_ledger_allocations');
grant select on app_public.credit_ledger_allocations to app_user;
create policy select_member on app_public.credit_ledger_allocations for select to app_user
  using (organization_id = any (current_setting('tenantbase.organization_ids')::uuid[]));

-- Spend caps: every member reads them and what they used; admins change them through
-- set_spend_cap / remove_spend_cap (no INSERT, UPDATE or DELETE grant).
select app_private.secure_table('app_public.credit_spend_caps');
grant select on app_public.credit_spend_caps to app_user;
create policy select_member on app_public.credit_spend_caps for select to app_user
  using (organization_id = any (current_setting('tenantbase.organization_ids')::uuid[]));

grant execute on function
  app_public.set_spend_cap(uuid, app_public.credit_spend_cap_period, numeric, uuid, uuid, numeric),
  app_public.remove_spend_cap(uuid),
  app_public.credit_spend_caps_spent(app_public.credit_spend_caps),
  app_public.credit_spend_caps_resets_at(app_public.credit_spend_caps),
  app_public.credit_accounts_available_by_category(app_public.credit_accounts),
  app_hidden.spend_cap_window_start(app_public.credit_spend_cap_period, timestamptz),
  app_hidden.spend_cap_window_end(app_public.credit_spend_cap_period, timestamptz),
  app_hidden.spend_cap_current_window(app_public.credit_spend_caps)
to app_user;
