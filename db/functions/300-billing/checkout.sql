-- Checkout and the billing portal: who may buy, what is bought, the Stripe customer, and a completed
-- checkout granting its credits once.

-- Runs as the caller: who may buy what. NOT_FOUND hides organizations the caller is not in.
create or replace function app_hidden.assert_billing_admin(organization_id uuid) returns void
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
begin
  if app_public.current_user_id() is null then
    perform app_hidden.raise_error('NOT_AUTHENTICATED', 'Sign in first.');
  end if;
  if assert_billing_admin.organization_id is null
     or not assert_billing_admin.organization_id = any (app_public.current_user_organization_ids()) then
    perform app_hidden.raise_error('NOT_FOUND', 'No such organization.');
  end if;
  if not assert_billing_admin.organization_id = any (app_public.current_user_organization_ids('admin')) then
    perform app_hidden.raise_error('FORBIDDEN', 'Only admins and owners can manage billing.');
  end if;
end;
$$;

create or replace function app_hidden.checkout_target(organization_id uuid, credit_package_id uuid, plan_id text)
  returns app_hidden.checkout_target
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
declare
  v_result app_hidden.checkout_target;
  v_price text;
begin
  perform app_hidden.assert_billing_admin(checkout_target.organization_id);
  if num_nonnulls(checkout_target.credit_package_id, checkout_target.plan_id) <> 1 then
    perform app_hidden.raise_error('INVALID_INPUT', 'Give exactly one of creditPackageId and planId.');
  end if;
  if checkout_target.credit_package_id is not null then
    select p.stripe_price_id into v_price from app_public.credit_packages p
    where p.id = checkout_target.credit_package_id and p.active;
    if not found then
      perform app_hidden.raise_error('NOT_FOUND', 'No such credit package.');
    end if;
    if v_price is null then
      perform app_hidden.raise_error('NOT_PURCHASABLE', 'This credit package has no Stripe price.');
    end if;
    v_result.mode := 'payment';
  else
    select p.stripe_price_id into v_price from app_public.plans p where p.id = checkout_target.plan_id;
    if not found then
      perform app_hidden.raise_error('NOT_FOUND', 'No such plan.');
    end if;
    if v_price is null then
      perform app_hidden.raise_error('NOT_PURCHASABLE', 'This plan cannot be bought.');
    end if;
    if exists (select 1 from app_public.subscriptions s
               where s.organization_id = checkout_target.organization_id
                 and s.status in ('active', 'trialing', 'past_due', 'incomplete', 'paused')) then
      perform app_hidden.raise_error('ALREADY_SUBSCRIBED',
        'The organization already has a subscription; change it in the billing portal.');
    end if;
    v_result.mode := 'subscription';
  end if;
  v_result.stripe_price_id := v_price;
  v_result.stripe_customer_id := (select c.stripe_customer_id from app_private.stripe_customers c
                                  where c.organization_id = checkout_target.organization_id);
  v_result.organization_name := (select o.name from app_public.organizations o where o.id = checkout_target.organization_id);
  v_result.customer_email := (select u.email from app_public.users u where u.id = app_public.current_user_id());
  return v_result;
end;
$$;

-- Stores the Stripe customer created for the organization; when two first checkouts raced, the
-- first stored wins and both get it back.
create or replace function app_hidden.set_stripe_customer(organization_id uuid, stripe_customer_id text) returns text
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_id text;
begin
  perform app_hidden.assert_billing_admin(set_stripe_customer.organization_id);
  if set_stripe_customer.stripe_customer_id is null or set_stripe_customer.stripe_customer_id !~ '^cus_[A-Za-z0-9_]+$' then
    raise exception 'not a Stripe customer id' using errcode = '22023';
  end if;
  insert into app_private.stripe_customers (organization_id, stripe_customer_id)
  values (set_stripe_customer.organization_id, set_stripe_customer.stripe_customer_id)
  on conflict on constraint stripe_customers_pkey do nothing;
  select c.stripe_customer_id into v_id from app_private.stripe_customers c
  where c.organization_id = set_stripe_customer.organization_id;
  return v_id;
end;
$$;

create or replace function app_hidden.billing_portal_customer(organization_id uuid) returns text
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
declare
  v_id text;
begin
  perform app_hidden.assert_billing_admin(billing_portal_customer.organization_id);
  select c.stripe_customer_id into v_id from app_private.stripe_customers c
  where c.organization_id = billing_portal_customer.organization_id;
  if v_id is null then
    perform app_hidden.raise_error('NO_BILLING_ACCOUNT', 'The organization has not bought anything yet.');
  end if;
  return v_id;
end;
$$;

create or replace function app_private.apply_checkout_session_event(event app_private.stripe_events, out outcome text, out note text)
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_session jsonb := event.payload -> 'data' -> 'object';
  v_session_id text := v_session ->> 'id';
  v_customer text := app_private.stripe_id(v_session -> 'customer');
  v_organization_id uuid := app_private.stripe_organization_id(v_session -> 'metadata', v_customer);
  v_package app_public.credit_packages;
  v_package_id uuid := app_private.try_uuid(v_session -> 'metadata' ->> 'credit_package_id');
  v_inserted boolean;
begin
  if v_organization_id is null then
    outcome := 'ignored'; note := 'no organization for this session';
    return;
  end if;
  -- Remember the customer Checkout used (it is ours already when the server created it).
  if v_customer is not null then
    insert into app_private.stripe_customers (organization_id, stripe_customer_id)
    values (v_organization_id, v_customer)
    on conflict do nothing;
  end if;
  if v_session ->> 'mode' is distinct from 'payment' then
    -- Subscriptions are applied from customer.subscription.* and invoice.paid.
    outcome := 'ignored'; note := format('mode %s', v_session ->> 'mode');
    return;
  end if;
  if coalesce(v_session ->> 'payment_status', '') not in ('paid', 'no_payment_required') then
    -- Delayed payment methods: checkout.session.async_payment_succeeded follows.
    outcome := 'ignored'; note := format('payment_status %s', v_session ->> 'payment_status');
    return;
  end if;
  if v_package_id is null then
    outcome := 'ignored'; note := 'no credit_package_id in metadata';
    return;
  end if;
  select * into v_package from app_public.credit_packages p where p.id = v_package_id;
  if not found then
    -- Money was taken for a package we do not know: fail loudly so an operator sees it.
    raise exception 'credit package % (checkout session %) does not exist', v_package_id, v_session_id;
  end if;

  insert into app_public.invoices (
    organization_id, kind, stripe_checkout_session_id, status, currency, amount_due, amount_paid,
    paid_at, credit_package_id, credits_granted, last_event_created_at, last_event_rank, last_event_id
  ) values (
    v_organization_id, 'credit_purchase', v_session_id, 'paid', coalesce(v_session ->> 'currency', 'usd'),
    coalesce((v_session ->> 'amount_total')::bigint, 0), coalesce((v_session ->> 'amount_total')::bigint, 0),
    event.stripe_created_at, v_package.id, v_package.credits,
    event.stripe_created_at, app_private.stripe_event_rank(event.type), event.id
  )
  on conflict (stripe_checkout_session_id) do nothing
  returning true into v_inserted;

  -- Exactly once per session: the ledger refuses a second grant with the same key (and the
  -- invoice row above exists once), whichever of completed / async_payment_succeeded and
  -- however many deliveries arrive.
  perform app_private.grant_credits(v_organization_id, v_package.credits, 'purchase', null,
                                    'stripe:checkout_session:' || v_session_id);
  if coalesce(v_inserted, false) then
    perform app_private.record_audit_event(v_organization_id, 'credits.purchased', 'credit_package', v_package.id,
      jsonb_build_object('credits', v_package.credits, 'stripe_checkout_session_id', v_session_id));
  end if;
  outcome := 'applied';
end;
$$;
