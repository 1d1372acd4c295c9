-- Deliveries: one message to one endpoint, each attempt a graphile-worker job
-- (workers/tasks/deliver_webhook.ts). Jobs of one endpoint share the named queue
-- webhooks:<endpoint id>, so an endpoint gets one request at a time, in order (a slow or hanging
-- endpoint holds at most one worker slot, never another's), and jobs of an endpoint that is
-- failing run at a lower priority than healthy ones. The worker decides when to retry (the
-- configured schedule, Retry-After) and SQL records the outcome: a 2xx succeeds; 410 Gone
-- disables the endpoint at once; any other failure retries until the schedule is exhausted, and
-- an endpoint failing without a single success for WEBHOOK_DISABLE_AFTER_FAILING_HOURS (5 days)
-- is disabled and its organization's admins are emailed.

create or replace trigger _100_audit_columns before insert or update on app_public.webhook_deliveries
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_public.webhook_attempts
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_private.webhook_attempt_leases
  for each row execute function app_private.tg_audit_columns();

-- Queues one attempt of a delivery at run_at (one job per delivery: the job key replaces a
-- queued one and leaves a running one alone).
create or replace function app_private.queue_webhook_attempt(organization_id uuid, delivery_id uuid, endpoint_id uuid, run_at timestamptz, failing boolean)
  returns void
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  perform graphile_worker.add_job(
    'deliver_webhook',
    json_build_object('organizationId', queue_webhook_attempt.organization_id, 'deliveryId', queue_webhook_attempt.delivery_id),
    queue_name := 'webhooks:' || queue_webhook_attempt.endpoint_id,
    run_at := queue_webhook_attempt.run_at,
    max_attempts := 5,
    job_key := 'webhook_delivery:' || queue_webhook_attempt.delivery_id,
    priority := case when queue_webhook_attempt.failing then 10 else 0 end
  );
end;
$$;

-- A delivery of the message to the endpoint, pending from its first attempt (new, or a
-- finished one started again: same message, same webhook-id, new attempts). Returns its id;
-- a delivery already pending is left as it is.
create or replace function app_private.queue_webhook_delivery(endpoint app_public.webhook_endpoints, message_id uuid) returns uuid
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
#variable_conflict use_column
declare
  v_delivery app_public.webhook_deliveries;
begin
  insert into app_public.webhook_deliveries (organization_id, message_id, endpoint_id, next_attempt_at)
  values (endpoint.organization_id, queue_webhook_delivery.message_id, endpoint.id, now())
  on conflict (organization_id, message_id, endpoint_id) do update
    set status = 'pending', attempt_count = 0, next_attempt_at = now()
    where webhook_deliveries.status <> 'pending'
  returning * into v_delivery;
  if not found then
    select d.id into v_delivery.id from app_public.webhook_deliveries d
    where d.organization_id = endpoint.organization_id and d.message_id = queue_webhook_delivery.message_id and d.endpoint_id = endpoint.id;
    return v_delivery.id;
  end if;
  perform app_private.queue_webhook_attempt(endpoint.organization_id, v_delivery.id, endpoint.id, now(), endpoint.failing_since is not null);
  return v_delivery.id;
end;
$$;

-- What the worker needs to make the next attempt, or no row when there is nothing to send (the
-- delivery is not pending; or its endpoint is disabled, and then the delivery fails). Takes a
-- lease for the request: when the organization already has max_in_flight leases live (in any
-- worker process), answers busy = true and the worker puts the attempt off. The lease ends when
-- the attempt is recorded, or at expires_at (lease_for: the request's timeout and a margin).
create or replace function app_private.webhook_delivery_to_send(organization_id uuid, delivery_id uuid, max_in_flight int, lease_for interval)
  returns table (busy boolean, endpoint_id uuid, url text, headers jsonb, message_id uuid, event_type text, payload jsonb,
                 message_created_at timestamptz, attempt_count int, secrets text[])
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
#variable_conflict use_column
declare
  v_delivery app_public.webhook_deliveries;
  v_endpoint app_public.webhook_endpoints;
  v_message app_public.webhook_messages;
  v_live int;
begin
  select * into v_delivery from app_public.webhook_deliveries d
  where d.organization_id = webhook_delivery_to_send.organization_id and d.id = webhook_delivery_to_send.delivery_id and d.status = 'pending';
  if not found then
    return;
  end if;
  select * into v_endpoint from app_public.webhook_endpoints e where e.organization_id = v_delivery.organization_id and e.id = v_delivery.endpoint_id;
  if v_endpoint.disabled_at is not null then
    update app_public.webhook_deliveries d set status = 'failed', next_attempt_at = null
    where d.organization_id = v_delivery.organization_id and d.id = v_delivery.id;
    return;
  end if;
  -- one organization's claims in turn (a transaction-level lock: this statement's)
  perform pg_advisory_xact_lock(hashtextextended('webhook_attempt_leases:' || v_delivery.organization_id::text, 0));
  delete from app_private.webhook_attempt_leases l
  where l.organization_id = v_delivery.organization_id and (l.expires_at <= now() or l.delivery_id = v_delivery.id);
  select count(*) into v_live from app_private.webhook_attempt_leases l where l.organization_id = v_delivery.organization_id;
  if v_live >= webhook_delivery_to_send.max_in_flight then
    busy := true;
    return next;
    return;
  end if;
  insert into app_private.webhook_attempt_leases (organization_id, delivery_id, expires_at)
  values (v_delivery.organization_id, v_delivery.id, now() + webhook_delivery_to_send.lease_for);
  select * into v_message from app_public.webhook_messages m where m.organization_id = v_delivery.organization_id and m.id = v_delivery.message_id;
  busy := false;
  endpoint_id := v_endpoint.id;
  url := v_endpoint.url;
  headers := v_endpoint.headers;
  message_id := v_message.id;
  event_type := v_message.event_type;
  payload := v_message.payload;
  message_created_at := v_message.created_at;
  attempt_count := v_delivery.attempt_count;
  secrets := app_private.webhook_signing_secrets(v_endpoint.organization_id, v_endpoint.id);
  return next;
end;
$$;

-- Records one attempt and decides what follows. retry_in_ms: when the worker would try again
-- (null: the schedule is exhausted). disable_after: how long an endpoint may fail without a
-- success before it is disabled. Returns succeeded, retrying, failed or endpoint_disabled.
create or replace function app_private.record_webhook_attempt(
  organization_id uuid, delivery_id uuid, status_code int, duration_ms int, response_body text, error text,
  retry_in_ms bigint, disable_after interval
) returns text
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_delivery app_public.webhook_deliveries;
  v_endpoint app_public.webhook_endpoints;
  v_reason text;
begin
  delete from app_private.webhook_attempt_leases l
  where l.organization_id = record_webhook_attempt.organization_id and l.delivery_id = record_webhook_attempt.delivery_id;
  select * into v_delivery from app_public.webhook_deliveries d
  where d.organization_id = record_webhook_attempt.organization_id and d.id = record_webhook_attempt.delivery_id
  for update;
  if not found then
    return 'failed';  -- pruned or its endpoint deleted meanwhile
  end if;
  insert into app_public.webhook_attempts (organization_id, delivery_id, status_code, duration_ms, response_body, error)
  values (v_delivery.organization_id, v_delivery.id, record_webhook_attempt.status_code, greatest(record_webhook_attempt.duration_ms, 0),
          left(record_webhook_attempt.response_body, 4096), left(record_webhook_attempt.error, 1000));
  select * into v_endpoint from app_public.webhook_endpoints e
  where e.organization_id = v_delivery.organization_id and e.id = v_delivery.endpoint_id
  for update;

  if record_webhook_attempt.status_code between 200 and 299 then
    update app_public.webhook_deliveries d set status = 'succeeded', attempt_count = d.attempt_count + 1,
      last_attempt_at = now(), next_attempt_at = null
    where d.organization_id = v_delivery.organization_id and d.id = v_delivery.id;
    if v_endpoint.failing_since is not null then
      update app_public.webhook_endpoints e set failing_since = null where e.organization_id = v_endpoint.organization_id and e.id = v_endpoint.id;
    end if;
    return 'succeeded';
  end if;

  if record_webhook_attempt.status_code = 410 then
    v_reason := 'gone';
  elsif coalesce(v_endpoint.failing_since, now()) <= now() - record_webhook_attempt.disable_after then
    v_reason := 'failing';
  end if;
  if v_reason is not null and v_endpoint.disabled_at is null then
    update app_public.webhook_endpoints e set disabled_at = now(), disabled_reason = v_reason,
      failing_since = coalesce(e.failing_since, now())
    where e.organization_id = v_endpoint.organization_id and e.id = v_endpoint.id;
    perform app_private.record_audit_event(v_endpoint.organization_id, 'webhook_endpoint.disabled', 'webhook_endpoint', v_endpoint.id,
      jsonb_build_object('reason', v_reason));
    perform graphile_worker.add_job('webhook_endpoint_disabled_email',
      json_build_object('organizationId', v_endpoint.organization_id, 'endpointId', v_endpoint.id),
      job_key := 'webhook_endpoint_disabled_email:' || v_endpoint.id);
  elsif v_endpoint.failing_since is null then
    update app_public.webhook_endpoints e set failing_since = now() where e.organization_id = v_endpoint.organization_id and e.id = v_endpoint.id;
  end if;

  if v_reason is not null or v_endpoint.disabled_at is not null or record_webhook_attempt.retry_in_ms is null then
    update app_public.webhook_deliveries d set status = 'failed', attempt_count = d.attempt_count + 1,
      last_attempt_at = now(), next_attempt_at = null
    where d.organization_id = v_delivery.organization_id and d.id = v_delivery.id;
    return case when v_reason is not null then 'endpoint_disabled' else 'failed' end;
  end if;
  update app_public.webhook_deliveries d set attempt_count = d.attempt_count + 1, last_attempt_at = now(),
    next_attempt_at = now() + make_interval(secs => record_webhook_attempt.retry_in_ms / 1000.0)
  where d.organization_id = v_delivery.organization_id and d.id = v_delivery.id
  returning * into v_delivery;
  perform app_private.queue_webhook_attempt(v_delivery.organization_id, v_delivery.id, v_delivery.endpoint_id, v_delivery.next_attempt_at, true);
  return 'retrying';
end;
$$;

-- The worker puts an attempt off without making it (its organization has max_in_flight requests
-- in flight already): same attempt, later.
create or replace function app_private.postpone_webhook_attempt(organization_id uuid, delivery_id uuid, delay_ms int) returns void
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_delivery app_public.webhook_deliveries;
begin
  update app_public.webhook_deliveries d set next_attempt_at = now() + make_interval(secs => postpone_webhook_attempt.delay_ms / 1000.0)
  where d.organization_id = postpone_webhook_attempt.organization_id and d.id = postpone_webhook_attempt.delivery_id and d.status = 'pending'
  returning * into v_delivery;
  if found then
    perform app_private.queue_webhook_attempt(v_delivery.organization_id, v_delivery.id, v_delivery.endpoint_id, v_delivery.next_attempt_at, false);
  end if;
end;
$$;

-- For the disabled-endpoint email: the endpoint and its organization's admins and owners.
create or replace function app_private.webhook_endpoint_disabled_email(organization_id uuid, endpoint_id uuid)
  returns table (email text, organization_name text, url text, disabled_reason text, failing_since timestamptz)
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select u.email::text, o.name, e.url, e.disabled_reason, e.failing_since
  from app_public.webhook_endpoints e
  join app_public.organizations o on o.id = e.organization_id
  join app_public.organization_members m on m.organization_id = e.organization_id and m.role in ('admin', 'owner')
  join app_public.users u on u.id = m.user_id and u.deleted_at is null
  where e.organization_id = webhook_endpoint_disabled_email.organization_id and e.id = webhook_endpoint_disabled_email.endpoint_id
    and e.disabled_reason in ('gone', 'failing')
  order by u.email;
$$;
