-- Stripe events: stored once, ranked, processed in any order, attempts recorded; helpers reading their fields.

create or replace function app_private.stripe_timestamp(value jsonb) returns timestamptz
  language sql immutable parallel safe
as $$
  select case when jsonb_typeof(value) = 'number' then to_timestamp(value::text::bigint) end;
$$;

-- An id field that may be a string or an expanded object ({"id": …}).
create or replace function app_private.stripe_id(value jsonb) returns text
  language sql immutable parallel safe
as $$
  select case jsonb_typeof(value) when 'string' then value #>> '{}' when 'object' then value ->> 'id' end;
$$;

create or replace function app_private.try_uuid(value text) returns uuid
  language sql immutable parallel safe
as $$
  select case when value ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then value::uuid end;
$$;

-- Which organization an event is about: the organization_id our server put in the metadata,
-- else the organization whose Stripe customer it is. Null when neither is known. PL/pgSQL, not
-- SQL: a security definer SQL function is never inlined and was planned again on every event.
create or replace function app_private.stripe_organization_id(metadata jsonb, stripe_customer_id text) returns uuid
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
begin
  return coalesce(
    (select o.id from app_public.organizations o
      where o.id = app_private.try_uuid(stripe_organization_id.metadata ->> 'organization_id')),
    (select c.organization_id from app_private.stripe_customers c
      where c.stripe_customer_id = stripe_organization_id.stripe_customer_id),
    (select s.organization_id from app_public.subscriptions s
      where s.stripe_customer_id = stripe_organization_id.stripe_customer_id)
  );
end;
$$;

-- The subscription an invoice belongs to: `invoice.subscription` before API version 2025-03-31,
-- `invoice.parent.subscription_details.subscription` since. Both are accepted.
create or replace function app_private.stripe_invoice_subscription_id(invoice jsonb) returns text
  language sql immutable parallel safe
as $$
  select coalesce(
    app_private.stripe_id(invoice -> 'subscription'),
    app_private.stripe_id(invoice -> 'parent' -> 'subscription_details' -> 'subscription')
  );
$$;

-- Same-second order of events that overwrite the same row (Stripe `created` has 1 s resolution):
-- a later stage of the object's life wins, then the event id decides, so that every delivery
-- order ends in the same state.
create or replace function app_private.stripe_event_rank(type text) returns smallint
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

-- Called by POST /webhooks/stripe with events whose signatures the server has verified (the
-- deliveries that arrived together). Stores them and queues one job for them in one
-- transaction: graphile-worker's add_jobs runs five statements and a NOTIFY per call, re-planned
-- on every call, so a job per event cost more than storing the event. A repeated delivery (already stored, or earlier in the same batch) stores and queues
-- nothing. Returns, for each event in order, whether it was new. One malformed event fails the
-- whole call (the server then stores the batch one event at a time).
create or replace function app_private.receive_stripe_events(events jsonb[]) returns boolean[]
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_event jsonb;
  v_new text[];
begin
  foreach v_event in array coalesce(events, '{}') loop
    if v_event is null or (v_event ->> 'id') is null or (v_event ->> 'id') !~ '^evt_[A-Za-z0-9_]+$'
       or (v_event ->> 'type') is null or jsonb_typeof(v_event -> 'created') is distinct from 'number' then
      raise exception 'not a Stripe event' using errcode = '22023';
    end if;
  end loop;
  with inserted as (
    insert into app_private.stripe_events (id, type, api_version, livemode, stripe_created_at, payload)
    select e ->> 'id', e ->> 'type', e ->> 'api_version', coalesce((e ->> 'livemode')::boolean, false),
           to_timestamp((e ->> 'created')::bigint), e
    from unnest(events) with ordinality as u (e, n)
    order by n
    on conflict (id) do nothing
    returning id
  )
  select array_agg(id) into v_new from inserted;
  if v_new is null then
    return array(select false from unnest(events));
  end if;
  -- One job for the batch (workers/tasks/stripe_events.ts), its payload an array of event ids:
  -- graphile-worker retries only the entries that failed. No job key: the insert above already
  -- let each event through once.
  perform graphile_worker.add_job('stripe_events',
    (select json_agg(json_build_object('eventId', id) order by n) from unnest(v_new) with ordinality as u (id, n)));
  -- New: stored now, and the first time the id appears in this batch.
  return array(
    select (u.e ->> 'id') = any (v_new) and row_number() over (partition by u.e ->> 'id' order by u.n) = 1
    from unnest(events) with ordinality as u (e, n)
    order by u.n
  );
end;
$$;

-- One event: the same as a batch of one (servers of the previous release call this).
create or replace function app_private.receive_stripe_event(event jsonb) returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  return (app_private.receive_stripe_events(array[event]))[1];
end;
$$;

-- A failed attempt, recorded outside its (rolled back) subtransaction. PL/pgSQL keeps the plan.
create or replace function app_private.record_stripe_event_attempt(event_id text, error text) returns void
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  update app_private.stripe_events e set
    attempts = e.attempts + 1,
    last_attempt_at = now(),
    last_error = record_stripe_event_attempt.error
  where e.id = record_stripe_event_attempt.event_id;
end;
$$;

-- Applies stored events for the worker (workers/tasks/stripe_events.ts), all in one round trip
-- but each in a transaction of its own, committed before the next begins: as when each had its
-- own job, one event's failure or one organization's locks never hold up the others, and no
-- locks are held across events (so concurrent batches cannot deadlock on organizations). Each
-- attempt is counted (a successful one by process_stripe_event's own final update, one statement
-- less per event); a failed one is rolled back and recorded with its error. Returns, in the
-- order given, each event's outcome (null when it failed) and error (null when it did not).
--
-- The commits here are asynchronous (synchronous_commit off for these transactions only): they
-- do not wait for their WAL flush. Nothing can be lost by it: graphile-worker marks the job done
-- afterwards in a transaction of its own with a synchronous commit, which flushes the WAL up to
-- and including these commits; if PostgreSQL stops before that flush, the job is still there
-- and runs again (every event is idempotent). Each event's own fsync was what the worker waited
-- for between events.
--
-- A procedure, not a function, so that it can commit; not security definer (a procedure that is
-- cannot commit), so every name in it is schema-qualified: only the owner, which the worker runs
-- as, may call it.
create or replace procedure app_private.process_stripe_events(event_ids text[], inout outcomes text[] default null, inout errors text[] default null)
  language plpgsql
as $$
declare
  v_id text;
  v_outcome text;
  v_error text;
begin
  outcomes := '{}';
  errors := '{}';
  foreach v_id in array coalesce(event_ids, '{}') loop
    perform pg_catalog.set_config('synchronous_commit', 'off', true);
    v_outcome := null;
    v_error := null;
    begin
      -- counts its own attempt in the update that marks the event processed
      v_outcome := app_private.process_stripe_event(v_id);
    exception when others then
      get stacked diagnostics v_error = message_text;
    end;
    if v_error is not null then
      perform app_private.record_stripe_event_attempt(v_id, v_error);
    end if;
    outcomes := outcomes || v_outcome;
    errors := errors || v_error;
    commit;
  end loop;
end;
$$;

-- Applies one stored event. Safe to run any number of times: every branch is idempotent. The
-- event row is locked so that two runs of the same event (a retry racing a stuck worker) queue.
-- Each run is an attempt, counted by the same update that records the outcome; a run that fails
-- rolls that update back, and its caller records the failed attempt (record_stripe_event_attempt).
create or replace function app_private.process_stripe_event(event_id text) returns text
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
    -- Auto top-up (310-auto-top-up/top-up-payments.sql).
    when v_event.type in ('payment_intent.succeeded', 'payment_intent.payment_failed') then
      select r.outcome, r.note into v_outcome, v_note from app_private.apply_payment_intent_event(v_event) r;
    when v_event.type = 'setup_intent.succeeded' then
      select r.outcome, r.note into v_outcome, v_note from app_private.apply_setup_intent_event(v_event) r;
    else
      v_outcome := 'ignored';
      v_note := 'event type not handled';
  end case;
  update app_private.stripe_events e set
    attempts = e.attempts + 1,
    last_attempt_at = now(),
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
