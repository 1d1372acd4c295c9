--! Previous: sha1:be607fcfacc822c5bcd2a1bdcb36f2710d488871
--! Hash: sha1:8f3f07e0c379d34b919fe5344f289203f7c7b8ba
--! Message: stripe billing

--! split: 300-billing.sql
-- Stripe billing: the local copy of what Stripe knows about an organization's money.
--
-- Stripe is the source of truth; these tables are the fast copy every request reads. Stripe
-- delivers webhooks at least once, in no guaranteed order, and retries for days, so:
--   * every verified event is stored once, keyed by its Stripe id (app_private.stripe_events),
--     and a job is queued in the same transaction (app_private.receive_stripe_event);
--   * the job (workers/tasks/stripe_event.ts) calls app_private.process_stripe_event, which may
--     run any number of times for one event with the same end result;
--   * state that events overwrite (subscriptions, invoices) remembers the Stripe `created` time
--     of the last event applied, and an older event changes nothing, so delivery order does not
--     matter; credits are granted with an idempotency key derived from the Stripe object id.
-- Grants and policies: db/policies/300-billing.sql.

--------------------------------------------------------------------------------------------------
-- Settings
--------------------------------------------------------------------------------------------------

-- One row. The server writes grace_days from BILLING_GRACE_DAYS at start-up; SQL reads it here
-- rather than from a per-request setting so that triggers, jobs and psql all see the same value.
create table app_private.billing_settings (
  id boolean primary key default true check (id),
  grace_days int not null default 7 check (grace_days between 0 and 365),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid
);
insert into app_private.billing_settings (id) values (true);
create trigger _100_audit_columns before insert or update on app_private.billing_settings
  for each row execute function app_private.tg_audit_columns();

create function app_private.billing_grace_days() returns int
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select coalesce((select s.grace_days from app_private.billing_settings s where s.id), 7);
$$;
comment on function app_private.billing_grace_days() is
  'Days a past_due subscription keeps its plan (BILLING_GRACE_DAYS, written by the server at start-up).';

--------------------------------------------------------------------------------------------------
-- What can be bought
--------------------------------------------------------------------------------------------------

create table app_public.credit_packages (
  id uuid primary key default app_hidden.uuid_generate_v7(),
  name text not null,
  credits bigint not null,
  stripe_price_id text,
  active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  constraint credit_packages_name_check check (length(name) between 1 and 100 and name = btrim(name)),
  constraint credit_packages_credits_check check (credits > 0),
  constraint credit_packages_stripe_price_id_key unique (stripe_price_id)
);
comment on table app_public.credit_packages is
  E'@behavior -insert -update -delete\nA pack of credits sold for a one-time Stripe payment (createCheckoutSession with creditPackageId).';
comment on column app_public.credit_packages.stripe_price_id is 'The one-time Stripe price that buys this package.';
comment on column app_public.credit_packages.active is 'Inactive packages cannot be bought any more.';
create trigger _100_audit_columns before insert or update on app_public.credit_packages
  for each row execute function app_private.tg_audit_columns();

--------------------------------------------------------------------------------------------------
-- Stripe customers and subscriptions
--------------------------------------------------------------------------------------------------

-- The Stripe customer of each organization, created on first checkout (server/stripe/). Events
-- whose metadata names no organization are matched to one through this table.
create table app_private.stripe_customers (
  organization_id uuid primary key references app_public.organizations on delete cascade,
  stripe_customer_id text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  constraint stripe_customers_stripe_customer_id_key unique (stripe_customer_id)
);
create trigger _100_audit_columns before insert or update on app_private.stripe_customers
  for each row execute function app_private.tg_audit_columns();

-- Stripe's subscription statuses (the API may add more; an unknown one fails the job loudly).
create type app_public.subscription_status as enum (
  'trialing', 'active', 'past_due', 'canceled', 'unpaid', 'incomplete', 'incomplete_expired', 'paused'
);

-- One row per organization: its current subscription. When a customer cancels and subscribes
-- again, the newer Stripe subscription (by its own `created` time) replaces the row, and events
-- about the older one no longer change it.
create table app_public.subscriptions (
  organization_id uuid primary key references app_public.organizations on delete cascade,
  stripe_customer_id text not null,
  stripe_subscription_id text not null,
  status app_public.subscription_status not null,
  plan_id text references app_public.plans,
  plan_interval text,
  current_period_start timestamptz,
  current_period_end timestamptz,
  trial_ends_at timestamptz,
  cancel_at_period_end boolean not null default false,
  canceled_at timestamptz,
  -- Ordering state (see app_private.apply_subscription_event). Hidden from GraphQL.
  stripe_created_at timestamptz not null,
  last_event_created_at timestamptz not null,
  last_event_rank smallint not null,
  last_event_id text not null,
  payment_failed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  constraint subscriptions_plan_interval_check check (plan_interval in ('day', 'week', 'month', 'year'))
);
comment on table app_public.subscriptions is
  E'@name billing_subscription\n@behavior -insert -update -delete\nThe organization''s Stripe subscription, as of the last webhook applied. Written only by the Stripe event job.';
comment on column app_public.subscriptions.plan_id is 'The plan bought (matched by the Stripe price id of the subscription item).';
comment on column app_public.subscriptions.last_event_created_at is
  E'@behavior -*\nStripe `created` time of the last event applied: older events change nothing.';
comment on column app_public.subscriptions.stripe_created_at is E'@behavior -*\nWhen Stripe created this subscription.';
comment on column app_public.subscriptions.last_event_rank is E'@behavior -*\nTie-break between events of the same second.';
comment on column app_public.subscriptions.last_event_id is E'@behavior -*\nThe last event applied.';
comment on column app_public.subscriptions.payment_failed_at is
  E'@behavior -*\nStripe time of the latest invoice.payment_failed for this subscription.';
create unique index subscriptions_stripe_subscription_id_key on app_public.subscriptions (stripe_subscription_id);
comment on index app_public.subscriptions_stripe_subscription_id_key is
  'global-unique: Stripe issues the id; webhooks look the row up by it without knowing the organization.';
create unique index subscriptions_stripe_customer_id_key on app_public.subscriptions (stripe_customer_id);
comment on index app_public.subscriptions_stripe_customer_id_key is
  'global-unique: one Stripe customer per organization; webhooks look the row up by it.';
create index subscriptions_plan_id_idx on app_public.subscriptions (plan_id);
create trigger _100_audit_columns before insert or update on app_public.subscriptions
  for each row execute function app_private.tg_audit_columns();

--------------------------------------------------------------------------------------------------
-- Invoices: billing history as Stripe reports it, and credit-pack purchases
--------------------------------------------------------------------------------------------------

create table app_public.invoices (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  kind text not null,
  stripe_invoice_id text,
  stripe_checkout_session_id text,
  stripe_subscription_id text,
  status text not null,
  currency text not null,
  amount_due bigint not null default 0,
  amount_paid bigint not null default 0,
  period_start timestamptz,
  period_end timestamptz,
  hosted_invoice_url text,
  paid_at timestamptz,
  plan_id text references app_public.plans,
  credit_package_id uuid references app_public.credit_packages,
  credits_granted bigint not null default 0,
  last_event_created_at timestamptz not null,
  last_event_rank smallint not null,
  last_event_id text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id),
  constraint invoices_kind_check check (kind in ('subscription', 'credit_purchase')),
  constraint invoices_status_check check (status in ('draft', 'open', 'paid', 'uncollectible', 'void')),
  constraint invoices_source_check check (
    (kind = 'credit_purchase' and stripe_checkout_session_id is not null)
    or (kind = 'subscription' and stripe_invoice_id is not null)
  ),
  constraint invoices_amounts_check check (amount_due >= 0 and amount_paid >= 0 and credits_granted >= 0)
);
comment on table app_public.invoices is
  E'@behavior -insert -update -delete\nThe organization''s billing history as Stripe reports it: subscription invoices and credit-pack purchases (with the credits they granted). Admins and owners read it.';
comment on column app_public.invoices.kind is 'subscription (a Stripe invoice) or credit_purchase (a one-time Checkout payment).';
comment on column app_public.invoices.amount_due is 'In the currency''s smallest unit (cents).';
comment on column app_public.invoices.amount_paid is 'In the currency''s smallest unit (cents).';
comment on column app_public.invoices.credits_granted is 'Credits this payment added to the organization''s balance.';
comment on column app_public.invoices.last_event_created_at is E'@behavior -*\nStripe `created` time of the last event applied.';
comment on column app_public.invoices.last_event_rank is E'@behavior -*\nTie-break between events of the same second.';
comment on column app_public.invoices.last_event_id is E'@behavior -*\nThe last event applied.';
create unique index invoices_stripe_invoice_id_key on app_public.invoices (stripe_invoice_id);
comment on index app_public.invoices_stripe_invoice_id_key is
  'global-unique: Stripe issues the id; the webhook upsert finds the row by it.';
create unique index invoices_stripe_checkout_session_id_key on app_public.invoices (stripe_checkout_session_id);
comment on index app_public.invoices_stripe_checkout_session_id_key is
  'global-unique: Stripe issues the id; a checkout session is recorded once.';
create index invoices_organization_id_created_at_idx on app_public.invoices (organization_id, created_at desc);
create index invoices_plan_id_idx on app_public.invoices (plan_id);
create index invoices_credit_package_id_idx on app_public.invoices (credit_package_id);
create trigger _100_audit_columns before insert or update on app_public.invoices
  for each row execute function app_private.tg_audit_columns();

--------------------------------------------------------------------------------------------------
-- Event intake
--------------------------------------------------------------------------------------------------

create table app_private.stripe_events (
  id text primary key,
  type text not null,
  api_version text,
  livemode boolean not null default false,
  stripe_created_at timestamptz not null,
  payload jsonb not null,
  received_at timestamptz not null default now(),
  processed_at timestamptz,
  outcome text,
  note text,
  attempts int not null default 0,
  last_attempt_at timestamptz,
  last_error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  constraint stripe_events_outcome_check check (outcome in ('applied', 'stale', 'ignored')),
  constraint stripe_events_processed_check check ((processed_at is null) = (outcome is null))
);
comment on table app_private.stripe_events is
  'Every verified Stripe event, once. processed_at null and last_error set: the job is failing or gave up (see attempts).';
create index stripe_events_unprocessed_idx on app_private.stripe_events (received_at) where processed_at is null;
create index stripe_events_type_created_idx on app_private.stripe_events (type, stripe_created_at);
create trigger _100_audit_columns before insert or update on app_private.stripe_events
  for each row execute function app_private.tg_audit_columns();

-- Called by POST /webhooks/stripe with an event whose signature the server has verified. Stores
-- it and queues its job in one transaction; a repeated delivery stores and queues nothing.
-- Returns whether the event was new.
create function app_private.receive_stripe_event(event jsonb) returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_id text := event ->> 'id';
begin
  if v_id is null or v_id !~ '^evt_[A-Za-z0-9_]+$' or (event ->> 'type') is null
     or jsonb_typeof(event -> 'created') is distinct from 'number' then
    raise exception 'not a Stripe event' using errcode = '22023';
  end if;
  insert into app_private.stripe_events (id, type, api_version, livemode, stripe_created_at, payload)
  values (v_id, event ->> 'type', event ->> 'api_version', coalesce((event ->> 'livemode')::boolean, false),
          to_timestamp((event ->> 'created')::bigint), event)
  on conflict (id) do nothing;
  if not found then
    return false;
  end if;
  perform graphile_worker.add_job('stripe_event', json_build_object('eventId', v_id), job_key => v_id);
  return true;
end;
$$;

--------------------------------------------------------------------------------------------------
-- Processing helpers
--------------------------------------------------------------------------------------------------

create function app_private.stripe_timestamp(value jsonb) returns timestamptz
  language sql immutable parallel safe
as $$
  select case when jsonb_typeof(value) = 'number' then to_timestamp(value::text::bigint) end;
$$;

-- An id field that may be a string or an expanded object ({"id": …}).
create function app_private.stripe_id(value jsonb) returns text
  language sql immutable parallel safe
as $$
  select case jsonb_typeof(value) when 'string' then value #>> '{}' when 'object' then value ->> 'id' end;
$$;

create function app_private.try_uuid(value text) returns uuid
  language sql immutable parallel safe
as $$
  select case when value ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then value::uuid end;
$$;

-- Which organization an event is about: the organization_id our server put in the metadata,
-- else the organization whose Stripe customer it is. Null when neither is known.
create function app_private.stripe_organization_id(metadata jsonb, stripe_customer_id text) returns uuid
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select coalesce(
    (select o.id from app_public.organizations o
      where o.id = app_private.try_uuid(metadata ->> 'organization_id')),
    (select c.organization_id from app_private.stripe_customers c
      where c.stripe_customer_id = stripe_organization_id.stripe_customer_id),
    (select s.organization_id from app_public.subscriptions s
      where s.stripe_customer_id = stripe_organization_id.stripe_customer_id)
  );
$$;

-- The plan a Stripe price buys.
create function app_private.plan_for_stripe_price(stripe_price_id text) returns text
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select p.id from app_public.plans p
  where p.stripe_price_id = plan_for_stripe_price.stripe_price_id
  order by p.id
  limit 1;
$$;

-- Same-second order of events that overwrite the same row (Stripe `created` has 1 s resolution):
-- a later stage of the object's life wins, then the event id decides, so that every delivery
-- order ends in the same state.
create function app_private.stripe_event_rank(type text) returns smallint
  language sql immutable parallel safe
as $$
  select case type
    when 'customer.subscription.created' then 1
    when 'customer.subscription.updated' then 2
    when 'customer.subscription.paused' then 2
    when 'customer.subscription.resumed' then 2
    when 'customer.subscription.deleted' then 3
    when 'invoice.payment_failed' then 1
    when 'invoice.paid' then 2
    else 0
  end::smallint;
$$;

--------------------------------------------------------------------------------------------------
-- checkout.session.completed / checkout.session.async_payment_succeeded
--------------------------------------------------------------------------------------------------

create function app_private.apply_checkout_session_event(event app_private.stripe_events, out outcome text, out note text)
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

--------------------------------------------------------------------------------------------------
-- customer.subscription.created / updated / deleted (/ paused / resumed)
--------------------------------------------------------------------------------------------------

-- Order-proof upsert. The row is replaced only by
--   * an event about a newer subscription (its own `created`, then its id), or
--   * a newer event about the same subscription (event `created`, then rank, then event id).
-- Each subscription event carries the whole object, so the newest one is the whole truth; an
-- older one arriving later changes nothing. ON CONFLICT … DO UPDATE … WHERE re-checks the
-- condition against the latest committed row, so concurrent jobs cannot interleave wrongly.
-- payment_failed_at (from invoice.payment_failed) is kept across events: a failure newer than
-- the state turns active/trialing into past_due.
create function app_private.apply_subscription_event(event app_private.stripe_events, out outcome text, out note text)
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

--------------------------------------------------------------------------------------------------
-- invoice.paid / invoice.payment_failed
--------------------------------------------------------------------------------------------------

-- The subscription an invoice belongs to: `invoice.subscription` before API version 2025-03-31,
-- `invoice.parent.subscription_details.subscription` since. Both are accepted.
create function app_private.stripe_invoice_subscription_id(invoice jsonb) returns text
  language sql immutable parallel safe
as $$
  select coalesce(
    app_private.stripe_id(invoice -> 'subscription'),
    app_private.stripe_id(invoice -> 'parent' -> 'subscription_details' -> 'subscription')
  );
$$;

create function app_private.upsert_invoice(event app_private.stripe_events, organization_id uuid, plan_id text)
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

create function app_private.apply_invoice_event(event app_private.stripe_events, out outcome text, out note text)
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

--------------------------------------------------------------------------------------------------
-- The job's entry point
--------------------------------------------------------------------------------------------------

-- Applies one stored event. Safe to run any number of times: every branch is idempotent. The
-- event row is locked so that two runs of the same event (a retry racing a stuck worker) queue.
create function app_private.process_stripe_event(event_id text) returns text
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_event app_private.stripe_events;
  v_outcome text;
  v_note text;
begin
  select * into v_event from app_private.stripe_events e where e.id = process_stripe_event.event_id for update;
  if not found then
    raise exception 'stripe event % is not stored', process_stripe_event.event_id;
  end if;
  case
    when v_event.type in ('checkout.session.completed', 'checkout.session.async_payment_succeeded') then
      select r.outcome, r.note into v_outcome, v_note from app_private.apply_checkout_session_event(v_event) r;
    when v_event.type in ('customer.subscription.created', 'customer.subscription.updated',
                          'customer.subscription.deleted', 'customer.subscription.paused',
                          'customer.subscription.resumed') then
      select r.outcome, r.note into v_outcome, v_note from app_private.apply_subscription_event(v_event) r;
    when v_event.type in ('invoice.paid', 'invoice.payment_failed') then
      select r.outcome, r.note into v_outcome, v_note from app_private.apply_invoice_event(v_event) r;
    else
      v_outcome := 'ignored';
      v_note := 'event type not handled';
  end case;
  update app_private.stripe_events e set
    processed_at = coalesce(e.processed_at, now()),
    outcome = v_outcome,
    note = v_note,
    last_error = null
  where e.id = v_event.id;
  return v_outcome;
end;
$$;
comment on function app_private.process_stripe_event(text) is
  'Applies a stored Stripe event (idempotent); returns applied, stale or ignored.';

-- Bookkeeping for the job, outside its (rolled back) transaction.
create function app_private.record_stripe_event_attempt(event_id text, error text) returns void
  language sql volatile security definer
  set search_path = pg_catalog, public
as $$
  update app_private.stripe_events e set
    attempts = e.attempts + 1,
    last_attempt_at = now(),
    last_error = record_stripe_event_attempt.error
  where e.id = record_stripe_event_attempt.event_id;
$$;

--------------------------------------------------------------------------------------------------
-- The effective plan follows the subscription
--------------------------------------------------------------------------------------------------

-- Replaces the version in 100-plans-and-counters.sql (same signature; every limit check calls it).
--   no subscription             -> organizations.plan_id (free unless set by an operator)
--   active / trialing           -> the subscription's plan
--   past_due                    -> the subscription's plan until current_period_start + grace
--                                  days (the renewal that failed opened that period), then free
--   canceled / unpaid / others  -> free
create or replace function app_private.organization_plan(organization_id uuid) returns app_public.plans
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select p.*
  from app_public.organizations o
  left join app_public.subscriptions s on s.organization_id = o.id
  join app_public.plans p on p.id = case
    when s.organization_id is null then o.plan_id
    when s.status in ('active', 'trialing') then coalesce(s.plan_id, 'free')
    when s.status = 'past_due'
         and now() < coalesce(s.current_period_start, s.last_event_created_at)
                     + make_interval(days => app_private.billing_grace_days())
      then coalesce(s.plan_id, 'free')
    else 'free'
  end
  where o.id = organization_plan.organization_id;
$$;
comment on function app_private.organization_plan(uuid) is
  'The plan whose limits apply to the organization now: follows its Stripe subscription (see 300-billing.sql).';

-- Whether the organization's plan is paid for through Stripe right now (its credits then come
-- from invoice.paid, once per invoice). The monthly allowance job should skip such organizations
-- so that they are not granted the plan's credits twice.
create function app_private.organization_has_billed_plan(organization_id uuid) returns boolean
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select exists (
    select 1 from app_public.subscriptions s
    where s.organization_id = organization_has_billed_plan.organization_id
      and s.status in ('active', 'trialing', 'past_due')
  );
$$;

--------------------------------------------------------------------------------------------------
-- Outbound (createCheckoutSession / createBillingPortalSession, server/stripe/plugin.ts)
--------------------------------------------------------------------------------------------------

create type app_hidden.checkout_target as (
  mode text,
  stripe_price_id text,
  stripe_customer_id text,
  organization_name text,
  customer_email text
);

-- Runs as the caller: who may buy what. NOT_FOUND hides organizations the caller is not in.
create function app_hidden.assert_billing_admin(organization_id uuid) returns void
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

create function app_hidden.checkout_target(organization_id uuid, credit_package_id uuid, plan_id text)
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
create function app_hidden.set_stripe_customer(organization_id uuid, stripe_customer_id text) returns text
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

create function app_hidden.billing_portal_customer(organization_id uuid) returns text
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
