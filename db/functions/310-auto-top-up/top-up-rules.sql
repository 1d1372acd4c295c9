-- The admin's side of auto top-up: the rule (one per organization), turning it off, whether a
-- card is saved, and what Checkout in setup mode needs to save one.

-- For createAutoTopUpSetupSession (server/stripe/plugin.ts), as the caller: an admin's
-- organization, its Stripe customer (null: the server creates one), its name and the caller's
-- address for a new customer.
create or replace function app_hidden.auto_top_up_setup_target(organization_id uuid)
returns table (stripe_customer_id text, organization_name text, customer_email text)
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
begin
  perform app_hidden.assert_billing_admin(auto_top_up_setup_target.organization_id);
  return query select
    (select c.stripe_customer_id from app_private.stripe_customers c where c.organization_id = auto_top_up_setup_target.organization_id),
    (select o.name from app_public.organizations o where o.id = auto_top_up_setup_target.organization_id),
    (select u.email::text from app_public.users u where u.id = app_public.current_user_id());
end;
$$;

-- Sets the organization's rule and turns it on: when available credits fall to or below
-- threshold, buy the credit package (one pack, or with target_balance enough packs to reach it,
-- at most 100), at most max_per_month times and monthly_limit_amount of money (smallest currency
-- unit, the package's currency) per calendar month (UTC). Setting it again changes the rule and
-- keeps a decline back-off or an authentication pause: neither can be skipped by saving the rule.
create or replace function app_public.set_auto_top_up(
  organization_id uuid,
  credit_package_id uuid,
  threshold numeric,
  max_per_month int,
  monthly_limit_amount numeric,
  target_balance numeric default null
) returns app_public.auto_top_up_rules
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_package app_public.credit_packages;
  v_rule app_public.auto_top_up_rules;
begin
  perform app_hidden.assert_billing_admin(set_auto_top_up.organization_id);
  if threshold is null or threshold <> trunc(threshold) or threshold not between 0 and 1000000000000 then
    perform app_hidden.raise_error('INVALID_AMOUNT', 'threshold must be a whole number of credits from 0 to 10^12.');
  end if;
  if target_balance is not null and (target_balance <> trunc(target_balance) or target_balance <= threshold
                                     or target_balance > 1000000000000) then
    perform app_hidden.raise_error('INVALID_AMOUNT', 'targetBalance must be a whole number of credits above threshold, at most 10^12.');
  end if;
  if max_per_month is null or max_per_month not between 1 and 100 then
    perform app_hidden.raise_error('INVALID_ARGUMENTS', 'maxPerMonth must be from 1 to 100.');
  end if;
  if monthly_limit_amount is null or monthly_limit_amount <> trunc(monthly_limit_amount)
     or monthly_limit_amount not between 1 and 100000000000 then
    perform app_hidden.raise_error('INVALID_AMOUNT', 'monthlyLimitAmount must be a whole number of the currency''s smallest unit, from 1 to 10^11.');
  end if;
  select * into v_package from app_public.credit_packages p where p.id = set_auto_top_up.credit_package_id and p.active;
  if not found then
    perform app_hidden.raise_error('NOT_FOUND', 'No such credit package.');
  end if;
  if v_package.unit_amount is null then
    perform app_hidden.raise_error('NOT_PURCHASABLE', 'This credit package has no price for automatic purchase.');
  end if;
  if monthly_limit_amount < v_package.unit_amount then
    perform app_hidden.raise_error('INVALID_AMOUNT', 'monthlyLimitAmount is less than one pack costs.');
  end if;
  if not exists (select 1 from app_private.auto_top_up_payment_methods m where m.organization_id = set_auto_top_up.organization_id) then
    perform app_hidden.raise_error('NO_PAYMENT_METHOD', 'Save a card for automatic payments first (createAutoTopUpSetupSession).');
  end if;
  insert into app_public.auto_top_up_rules as r
    (organization_id, enabled, credit_package_id, threshold, target_balance, max_per_month, monthly_limit_amount, currency)
  values (set_auto_top_up.organization_id, true, v_package.id, threshold, target_balance, max_per_month,
          monthly_limit_amount, v_package.currency)
  on conflict on constraint auto_top_up_rules_pkey do update
    set enabled = true, credit_package_id = excluded.credit_package_id, threshold = excluded.threshold,
        target_balance = excluded.target_balance, max_per_month = excluded.max_per_month,
        monthly_limit_amount = excluded.monthly_limit_amount, currency = excluded.currency
  returning * into v_rule;
  perform app_private.record_audit_event(set_auto_top_up.organization_id, 'auto_top_up.set', 'auto_top_up_rule', null,
    jsonb_build_object('credit_package_id', v_package.id, 'threshold', threshold, 'max_per_month', max_per_month,
                       'monthly_limit_amount', monthly_limit_amount, 'target_balance', target_balance));
  return v_rule;
end;
$$;
comment on function app_public.set_auto_top_up(uuid, uuid, numeric, int, numeric, numeric) is
  E'@resultFieldName autoTopUpRule\nTurns auto top-up on with this rule (admins and owners): buy the credit package when available credits fall to or below threshold, within maxPerMonth and monthlyLimitAmount per calendar month.';

-- Turns auto top-up off: no new attempt starts, and an attempt still waiting for the worker is
-- canceled with its job. (One already sent to Stripe finishes.)
create or replace function app_public.disable_auto_top_up(organization_id uuid) returns app_public.auto_top_up_rules
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_rule app_public.auto_top_up_rules;
begin
  perform app_hidden.assert_billing_admin(disable_auto_top_up.organization_id);
  update app_public.auto_top_up_rules r set enabled = false
  where r.organization_id = disable_auto_top_up.organization_id
  returning * into v_rule;
  if not found then
    perform app_hidden.raise_error('NOT_FOUND', 'Auto top-up is not set up for this organization.');
  end if;
  update app_public.auto_top_up_attempts a set status = 'canceled', completed_at = now()
  where a.organization_id = disable_auto_top_up.organization_id and a.status = 'pending';
  perform graphile_worker.remove_job('auto-top-up:' || disable_auto_top_up.organization_id);
  perform app_private.record_audit_event(disable_auto_top_up.organization_id, 'auto_top_up.disabled', 'auto_top_up_rule', null, '{}');
  return v_rule;
end;
$$;

comment on function app_public.disable_auto_top_up(uuid) is
  E'@resultFieldName autoTopUpRule\nTurns auto top-up off (admins and owners); an attempt not yet sent to Stripe is canceled.';

-- Whether a card for automatic payments is saved (the card itself stays at Stripe).
create or replace function app_public.auto_top_up_rules_payment_method_saved(rule app_public.auto_top_up_rules) returns boolean
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
begin
  return exists (select 1 from app_private.auto_top_up_payment_methods m where m.organization_id = (rule).organization_id);
end;
$$;
comment on function app_public.auto_top_up_rules_payment_method_saved(app_public.auto_top_up_rules) is
  'Whether a card for automatic payments is saved (createAutoTopUpSetupSession).';

create or replace trigger _100_audit_columns before insert or update on app_public.auto_top_up_rules
  for each row execute function app_private.tg_audit_columns();
