with pack as (
  insert into app_public.credit_packages (name, credits, stripe_price_id, unit_amount, currency)
  values ('Fixture auto top-up pack', 100, 'price_fixture_top_up_' || md5(random()::text), 500, 'usd')
  returning id
), card as (
  insert into app_private.auto_top_up_payment_methods (organization_id, stripe_payment_method_id, stripe_setup_intent_id, stripe_customer_id, saved_at)
  values ($1, 'pm_fixture', 'seti_fixture', 'cus_fixture', now())
  returning organization_id
), rule as (
  insert into app_public.auto_top_up_rules (organization_id, enabled, credit_package_id, threshold, max_per_month, monthly_limit_amount, currency)
  select $1, false, pack.id, 10, 2, 1000, 'usd' from pack
  returning organization_id
)
insert into app_public.auto_top_up_attempts (organization_id, status, credit_package_id, quantity, credits, amount, currency,
  balance_before, rule_max_per_month, rule_monthly_limit_amount)
select $1, 'succeeded', pack.id, 1, 100, 500, 'usd', 5, 2, 1000 from pack where $2::uuid is not null
