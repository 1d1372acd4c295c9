-- Invoices: recorded from Stripe, and a paid one grants its credits once.

create or replace function app_private.upsert_invoice(event app_private.stripe_events, organization_id uuid, plan_id text)
  returns app_public.invoices
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_invoice jsonb := event.payload -> 'data' -> 'object';
  v_line jsonb := v_invoice -> 'lines' -> 'data' -> 0;
  v_row app_public.invoices;
begin
  insert into app_public.invoices as i (
    organization_id, kind, stripe_invoice_id, stripe_subscription_id, status, currency, amount_due,
    amount_paid, period_start, period_end, hosted_invoice_url, paid_at, plan_id,
    last_event_created_at, last_event_rank, last_event_id
  ) values (
    upsert_invoice.organization_id, 'subscription', v_invoice ->> 'id',
    app_private.stripe_invoice_subscription_id(v_invoice),
    coalesce(v_invoice ->> 'status', case when event.type = 'invoice.paid' then 'paid' else 'open' end),
    coalesce(v_invoice ->> 'currency', 'usd'),
    coalesce((v_invoice ->> 'amount_due')::bigint, 0), coalesce((v_invoice ->> 'amount_paid')::bigint, 0),
    -- The subscription period is on the line; the invoice's own period is the previous one.
    coalesce(app_private.stripe_timestamp(v_line -> 'period' -> 'start'), app_private.stripe_timestamp(v_invoice -> 'period_start')),
    coalesce(app_private.stripe_timestamp(v_line -> 'period' -> 'end'), app_private.stripe_timestamp(v_invoice -> 'period_end')),
    v_invoice ->> 'hosted_invoice_url',
    case when event.type = 'invoice.paid' then
      coalesce(app_private.stripe_timestamp(v_invoice -> 'status_transitions' -> 'paid_at'), event.stripe_created_at)
    end,
    upsert_invoice.plan_id,
    event.stripe_created_at, app_private.stripe_event_rank(event.type), event.id
  )
  on conflict (stripe_invoice_id) do update set
    status = excluded.status,
    currency = excluded.currency,
    amount_due = excluded.amount_due,
    amount_paid = excluded.amount_paid,
    period_start = excluded.period_start,
    period_end = excluded.period_end,
    hosted_invoice_url = excluded.hosted_invoice_url,
    paid_at = coalesce(excluded.paid_at, i.paid_at),
    plan_id = coalesce(excluded.plan_id, i.plan_id),
    last_event_created_at = excluded.last_event_created_at,
    last_event_rank = excluded.last_event_rank,
    last_event_id = excluded.last_event_id
  where (excluded.last_event_created_at, excluded.last_event_rank, excluded.last_event_id)
      > (i.last_event_created_at, i.last_event_rank, i.last_event_id)
  returning * into v_row;
  if v_row.id is null then
    select * into v_row from app_public.invoices i where i.stripe_invoice_id = v_invoice ->> 'id';
  end if;
  return v_row;
end;
$$;

create or replace function app_private.apply_invoice_event(event app_private.stripe_events, out outcome text, out note text)
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_invoice jsonb := event.payload -> 'data' -> 'object';
  v_line jsonb := v_invoice -> 'lines' -> 'data' -> 0;
  v_subscription_id text := app_private.stripe_invoice_subscription_id(v_invoice);
  v_customer text := app_private.stripe_id(v_invoice -> 'customer');
  v_organization_id uuid;
  v_plan app_public.plans;
  v_row app_public.invoices;
  v_months int;
  v_credits bigint;
begin
  v_organization_id := coalesce(
    app_private.stripe_organization_id(
      coalesce(v_invoice -> 'parent' -> 'subscription_details' -> 'metadata',
               v_invoice -> 'subscription_details' -> 'metadata'),
      v_customer),
    (select s.organization_id from app_public.subscriptions s where s.stripe_subscription_id = v_subscription_id));
  if v_organization_id is null then
    outcome := 'ignored'; note := format('no organization for customer %s', v_customer);
    return;
  end if;
  if v_subscription_id is null then
    outcome := 'ignored'; note := 'not a subscription invoice';
    return;
  end if;

  select * into v_plan from app_public.plans p
  where p.id = coalesce(
    app_private.plan_for_stripe_price(coalesce(
      v_line -> 'pricing' -> 'price_details' ->> 'price',   -- API versions since 2025-03-31
      app_private.stripe_id(v_line -> 'price'),              -- older
      v_line -> 'plan' ->> 'id')),
    (select s.plan_id from app_public.subscriptions s where s.stripe_subscription_id = v_subscription_id));

  v_row := app_private.upsert_invoice(event, v_organization_id, v_plan.id);

  if event.type = 'invoice.payment_failed' then
    -- Marks the subscription past_due unless a newer subscription event says otherwise. Before
    -- the subscription is known here the job fails and retries (the subscription event is on
    -- its way), so the failure is never lost to delivery order.
    update app_public.subscriptions s set
      payment_failed_at = greatest(s.payment_failed_at, event.stripe_created_at),
      status = case when event.stripe_created_at > s.last_event_created_at and s.status in ('active', 'trialing')
                    then 'past_due' else s.status end
    where s.stripe_subscription_id = v_subscription_id;
    if not found then
      raise exception 'subscription % is not known yet; retrying', v_subscription_id;
    end if;
    outcome := 'applied';
    return;
  end if;

  -- invoice.paid: the plan's monthly credits (times the months the invoice covers), expiring at
  -- the end of the period, once per invoice whatever the deliveries.
  if v_plan.id is not null and v_plan.monthly_credits > 0 and coalesce((v_invoice ->> 'amount_paid')::bigint, 0) >= 0 then
    v_months := greatest(1, round(extract(epoch from (v_row.period_end - v_row.period_start)) / (86400 * 30.436875))::int);
    v_credits := v_plan.monthly_credits * coalesce(v_months, 1);
    perform app_private.grant_credits(v_organization_id, v_credits, 'subscription', v_row.period_end,
                                      'stripe:invoice:' || (v_invoice ->> 'id'));
    update app_public.invoices i set credits_granted = v_credits
    where i.organization_id = v_row.organization_id and i.id = v_row.id and i.credits_granted <> v_credits;
  end if;
  outcome := 'applied';
end;
$$;
