-- Stripe's word on auto top-up, through the event intake (300-billing/stripe-events.sql routes
-- the types here): a saved card (setup_intent.succeeded, or a pack bought with
-- setup_future_usage), a paid attempt
-- (payment_intent.succeeded: the credits, category purchased, once) and a refused one
-- (payment_intent.payment_failed). Idempotent and order-proof like every event: the organization
-- is always the one of our own attempt row or Stripe customer, never taken from metadata alone.

-- Stores a card Stripe saved for off-session payments as the organization's card for auto
-- top-up. Of two saved cards, the one Stripe saved later wins, whatever the delivery order
-- (source_id, the SetupIntent or PaymentIntent, breaks a same-second tie). A new card lifts a
-- decline back-off and an authentication pause. Returns whether it was stored.
create or replace function app_private.save_auto_top_up_card(
  organization_id uuid, payment_method_id text, source_id text, stripe_customer_id text, saved_at timestamptz
) returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_saved boolean;
begin
  insert into app_private.auto_top_up_payment_methods as m
    (organization_id, stripe_payment_method_id, stripe_setup_intent_id, stripe_customer_id, saved_at)
  values (save_auto_top_up_card.organization_id, payment_method_id, source_id, save_auto_top_up_card.stripe_customer_id,
          save_auto_top_up_card.saved_at)
  on conflict on constraint auto_top_up_payment_methods_pkey do update
    set stripe_payment_method_id = excluded.stripe_payment_method_id,
        stripe_setup_intent_id = excluded.stripe_setup_intent_id,
        stripe_customer_id = excluded.stripe_customer_id,
        saved_at = excluded.saved_at
    where (m.saved_at, m.stripe_setup_intent_id) < (excluded.saved_at, excluded.stripe_setup_intent_id)
  returning true into v_saved;
  if not coalesce(v_saved, false) then
    return false;
  end if;
  update app_public.auto_top_up_rules r set retry_after = null, paused_at = null, paused_reason = null
  where r.organization_id = save_auto_top_up_card.organization_id and (r.retry_after is not null or r.paused_at is not null);
  perform app_private.record_audit_event(save_auto_top_up_card.organization_id, 'auto_top_up.payment_method_saved',
    'auto_top_up_rule', null, jsonb_build_object('stripe_source_id', source_id));
  return true;
end;
$$;

-- The organization a saved card belongs to: the one whose Stripe customer it is; null when the
-- customer is unknown or the metadata names another organization.
create or replace function app_private.auto_top_up_card_organization(stripe_customer_id text, metadata jsonb) returns uuid
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
declare
  v_organization_id uuid;
begin
  select c.organization_id into v_organization_id from app_private.stripe_customers c
  where c.stripe_customer_id = auto_top_up_card_organization.stripe_customer_id;
  if v_organization_id is null
     or (metadata ->> 'organization_id' is not null
         and app_private.try_uuid(metadata ->> 'organization_id') is distinct from v_organization_id) then
    return null;
  end if;
  return v_organization_id;
end;
$$;

-- setup_intent.succeeded (Checkout in setup mode, createAutoTopUpSetupSession): the payment
-- method becomes the organization's card for auto top-up.
create or replace function app_private.apply_setup_intent_event(event app_private.stripe_events, out outcome text, out note text)
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_intent jsonb := event.payload -> 'data' -> 'object';
  v_customer text := app_private.stripe_id(v_intent -> 'customer');
  v_method text := app_private.stripe_id(v_intent -> 'payment_method');
  v_organization_id uuid := app_private.auto_top_up_card_organization(v_customer, v_intent -> 'metadata');
begin
  if v_organization_id is null then
    outcome := 'ignored'; note := 'no organization for this customer, or metadata naming another one';
    return;
  end if;
  if v_intent ->> 'status' is distinct from 'succeeded' or v_method is null or v_method !~ '^pm_[A-Za-z0-9_]+$' then
    outcome := 'ignored'; note := 'no usable payment method';
    return;
  end if;
  if app_private.save_auto_top_up_card(v_organization_id, v_method, v_intent ->> 'id', v_customer, event.stripe_created_at) then
    outcome := 'applied';
  else
    outcome := 'stale'; note := 'a card saved later is kept';
  end if;
end;
$$;

-- payment_intent.succeeded / payment_intent.payment_failed. The attempt is found by the id our
-- worker put in the metadata and must be the organization's own: its Stripe customer is the
-- PaymentIntent's, and the organization named in the metadata (if any) is the attempt's.
--   * the attempt's own PaymentIntent succeeded: grant the attempt's credits (category
--     purchased, source auto_top_up) once, keyed by the PaymentIntent; lift a pause;
--   * another PaymentIntent of the same customer naming the attempt succeeded: the Checkout the
--     admins were sent to complete a payment that needed authentication (its credits come with
--     checkout.session.completed): the attempt is done and auto top-up resumes;
--   * the attempt's PaymentIntent failed: the decline is recorded (unless it already succeeded).
-- A webhook may come before the worker recorded the PaymentIntent id: the first one naming the
-- attempt with the attempt's exact amount and currency becomes its PaymentIntent.
create or replace function app_private.apply_payment_intent_event(event app_private.stripe_events, out outcome text, out note text)
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_intent jsonb := event.payload -> 'data' -> 'object';
  v_intent_id text := v_intent ->> 'id';
  v_customer text := app_private.stripe_id(v_intent -> 'customer');
  v_named text := v_intent -> 'metadata' ->> 'organization_id';
  v_attempt_id uuid := app_private.try_uuid(v_intent -> 'metadata' ->> 'auto_top_up_attempt_id');
  v_attempt app_public.auto_top_up_attempts;
  v_organization_id uuid;
  v_own boolean;
  v_entry app_public.credit_ledger;
begin
  if v_attempt_id is null then
    -- A pack bought through Checkout with saveCardForAutoTopUp (setup_future_usage off_session):
    -- its card becomes the organization's card for auto top-up. Its credits come with
    -- checkout.session.completed.
    if event.type = 'payment_intent.succeeded' and v_intent ->> 'setup_future_usage' = 'off_session'
       and app_private.stripe_id(v_intent -> 'payment_method') ~ '^pm_[A-Za-z0-9_]+$' then
      v_organization_id := app_private.auto_top_up_card_organization(v_customer, v_intent -> 'metadata');
      if v_organization_id is not null and app_private.save_auto_top_up_card(v_organization_id,
           app_private.stripe_id(v_intent -> 'payment_method'), v_intent_id, v_customer, event.stripe_created_at) then
        outcome := 'applied'; note := 'card saved for auto top-up';
        return;
      end if;
    end if;
    outcome := 'ignored'; note := 'not an auto top-up';
    return;
  end if;
  select * into v_attempt from app_public.auto_top_up_attempts a where a.id = v_attempt_id for update;
  if not found then
    outcome := 'ignored'; note := 'no such auto top-up attempt';
    return;
  end if;
  if v_customer is null or not exists (select 1 from app_private.stripe_customers c
                                        where c.organization_id = v_attempt.organization_id and c.stripe_customer_id = v_customer)
     or (v_named is not null and app_private.try_uuid(v_named) is distinct from v_attempt.organization_id) then
    outcome := 'ignored'; note := 'the payment is not the attempt''s organization''s';
    return;
  end if;
  v_own := v_attempt.stripe_payment_intent_id = v_intent_id
    or (v_attempt.stripe_payment_intent_id is null
        and (v_intent ->> 'amount')::bigint = v_attempt.amount and v_intent ->> 'currency' = v_attempt.currency);

  if event.type = 'payment_intent.payment_failed' then
    if not v_own then
      outcome := 'ignored'; note := 'not the attempt''s payment';
      return;
    end if;
    if app_private.fail_auto_top_up_attempt(v_attempt, v_intent_id,
         coalesce(v_intent -> 'last_payment_error' ->> 'decline_code', v_intent -> 'last_payment_error' ->> 'code')) then
      outcome := 'applied';
    else
      outcome := 'stale'; note := format('attempt already %s', v_attempt.status);
    end if;
    return;
  end if;

  if not v_own then
    -- The completion Checkout of an attempt that needed authentication.
    if v_attempt.status = 'requires_action' then
      update app_public.auto_top_up_attempts a set status = 'succeeded', completed_at = now()
      where a.organization_id = v_attempt.organization_id and a.id = v_attempt.id;
      update app_public.auto_top_up_rules r set paused_at = null, paused_reason = null
      where r.organization_id = v_attempt.organization_id;
      outcome := 'applied'; note := 'completed by the cardholder; auto top-up resumes';
    else
      outcome := 'ignored'; note := 'not the attempt''s payment';
    end if;
    return;
  end if;
  if (v_intent ->> 'amount_received')::bigint is distinct from v_attempt.amount or v_intent ->> 'currency' <> v_attempt.currency then
    -- Money we did not ask for: fail loudly so that an operator looks.
    raise exception 'payment intent % received % %, auto top-up attempt % asked for % %', v_intent_id,
      v_intent ->> 'amount_received', v_intent ->> 'currency', v_attempt.id, v_attempt.amount, v_attempt.currency;
  end if;
  -- Once per PaymentIntent: the ledger keeps the key, whatever the deliveries.
  v_entry := app_private.grant_credits_from(v_attempt.organization_id, v_attempt.credits, 'auto_top_up', null,
    'stripe:payment_intent:' || v_intent_id, event.id);
  if v_attempt.status <> 'succeeded' then
    update app_public.auto_top_up_attempts a
    set status = 'succeeded', completed_at = now(), stripe_payment_intent_id = v_intent_id, decline_code = null
    where a.organization_id = v_attempt.organization_id and a.id = v_attempt.id;
    update app_public.auto_top_up_rules r set paused_at = null, paused_reason = null
    where r.organization_id = v_attempt.organization_id and r.paused_at is not null;
    perform app_private.record_audit_event(v_attempt.organization_id, 'credits.auto_top_up', 'auto_top_up_attempt', v_attempt.id,
      jsonb_build_object('credits', v_attempt.credits, 'amount', v_attempt.amount, 'currency', v_attempt.currency,
                         'stripe_payment_intent_id', v_intent_id));
    outcome := 'applied';
  else
    outcome := 'stale'; note := 'already granted';
  end if;
end;
$$;

create or replace trigger _100_audit_columns before insert or update on app_private.auto_top_up_payment_methods
  for each row execute function app_private.tg_audit_columns();
