-- How a Stripe subscription event changes an organization's plan.

-- The plan a Stripe price buys.
create or replace function app_private.plan_for_stripe_price(stripe_price_id text) returns text
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select p.id from app_public.plans p
  where p.stripe_price_id = plan_for_stripe_price.stripe_price_id
  order by p.id
  limit 1;
$$;

-- Order-proof upsert. The row is replaced only by
--   * an event about a newer subscription (its own `created`, then its id), or
--   * a newer event about the same subscription (event `created`, then rank, then event id).
-- Each subscription event carries the whole object, so the newest one is the whole truth; an
-- older one arriving later changes nothing. ON CONFLICT … DO UPDATE … WHERE re-checks the
-- condition against the latest committed row, so concurrent jobs cannot interleave wrongly.
-- payment_failed_at (from invoice.payment_failed) is kept across events: a failure newer than
-- the state turns active/trialing into past_due.
create or replace function app_private.apply_subscription_event(event app_private.stripe_events, out outcome text, out note text)
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_sub jsonb := event.payload -> 'data' -> 'object';
  v_item jsonb := v_sub -> 'items' -> 'data' -> 0;
  v_customer text := app_private.stripe_id(v_sub -> 'customer');
  v_organization_id uuid := app_private.stripe_organization_id(v_sub -> 'metadata', v_customer);
  v_price_id text := coalesce(v_item -> 'price' ->> 'id', v_item -> 'plan' ->> 'id');
  v_plan_id text := app_private.plan_for_stripe_price(v_price_id);
  v_status app_public.subscription_status;
  v_old app_public.subscriptions;
  v_new app_public.subscriptions;
begin
  if v_organization_id is null then
    outcome := 'ignored'; note := format('no organization for customer %s', v_customer);
    return;
  end if;
  v_status := coalesce(v_sub ->> 'status', case when event.type = 'customer.subscription.deleted' then 'canceled' end);
  if v_plan_id is null and v_price_id is null then
    -- No price on the item (should not happen): the plan our checkout asked for.
    v_plan_id := (select p.id from app_public.plans p where p.id = v_sub -> 'metadata' ->> 'plan_id');
  end if;
  if v_plan_id is null and v_status in ('active', 'trialing', 'past_due') then
    raise exception 'no plan has stripe_price_id % (subscription %)', v_price_id, v_sub ->> 'id';
  end if;

  select * into v_old from app_public.subscriptions s where s.organization_id = v_organization_id;

  insert into app_public.subscriptions as s (
    organization_id, stripe_customer_id, stripe_subscription_id, status, plan_id, plan_interval,
    current_period_start, current_period_end, trial_ends_at, cancel_at_period_end, canceled_at,
    stripe_created_at, last_event_created_at, last_event_rank, last_event_id
  ) values (
    v_organization_id, v_customer, v_sub ->> 'id', v_status, v_plan_id,
    coalesce(v_item -> 'price' -> 'recurring' ->> 'interval', v_item -> 'plan' ->> 'interval'),
    -- API versions since 2025-03-31 put the period on the item; older ones on the subscription.
    coalesce(app_private.stripe_timestamp(v_sub -> 'current_period_start'), app_private.stripe_timestamp(v_item -> 'current_period_start')),
    coalesce(app_private.stripe_timestamp(v_sub -> 'current_period_end'), app_private.stripe_timestamp(v_item -> 'current_period_end')),
    app_private.stripe_timestamp(v_sub -> 'trial_end'),
    coalesce((v_sub ->> 'cancel_at_period_end')::boolean, false),
    app_private.stripe_timestamp(v_sub -> 'canceled_at'),
    coalesce(app_private.stripe_timestamp(v_sub -> 'created'), event.stripe_created_at),
    event.stripe_created_at, app_private.stripe_event_rank(event.type), event.id
  )
  on conflict (organization_id) do update set
    stripe_customer_id = excluded.stripe_customer_id,
    stripe_subscription_id = excluded.stripe_subscription_id,
    status = case
      when excluded.stripe_subscription_id = s.stripe_subscription_id
           and s.payment_failed_at > excluded.last_event_created_at
           and excluded.status in ('active', 'trialing')
        then 'past_due'::app_public.subscription_status
      else excluded.status
    end,
    plan_id = excluded.plan_id,
    plan_interval = excluded.plan_interval,
    current_period_start = excluded.current_period_start,
    current_period_end = excluded.current_period_end,
    trial_ends_at = excluded.trial_ends_at,
    cancel_at_period_end = excluded.cancel_at_period_end,
    canceled_at = excluded.canceled_at,
    stripe_created_at = excluded.stripe_created_at,
    last_event_created_at = excluded.last_event_created_at,
    last_event_rank = excluded.last_event_rank,
    last_event_id = excluded.last_event_id,
    payment_failed_at = case when excluded.stripe_subscription_id = s.stripe_subscription_id then s.payment_failed_at end
  where (excluded.stripe_created_at, excluded.stripe_subscription_id) > (s.stripe_created_at, s.stripe_subscription_id)
     or (excluded.stripe_subscription_id = s.stripe_subscription_id
         and (excluded.last_event_created_at, excluded.last_event_rank, excluded.last_event_id)
           > (s.last_event_created_at, s.last_event_rank, s.last_event_id))
  returning * into v_new;

  if v_new.organization_id is null then
    outcome := 'stale';
    return;
  end if;
  if v_old.organization_id is null or v_old.status is distinct from v_new.status
     or v_old.plan_id is distinct from v_new.plan_id then
    perform app_private.record_audit_event(v_organization_id, 'subscription.changed', 'subscription', null,
      jsonb_build_object('stripe_subscription_id', v_new.stripe_subscription_id,
                         'from', jsonb_build_object('status', v_old.status, 'plan_id', v_old.plan_id),
                         'to', jsonb_build_object('status', v_new.status, 'plan_id', v_new.plan_id)));
  end if;
  outcome := 'applied';
end;
$$;
