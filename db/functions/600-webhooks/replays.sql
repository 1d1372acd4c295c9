-- Sending again: a test event to one endpoint, one message again to the endpoints it was sent
-- to, and everything an endpoint missed since a time (after it was disabled, or down). A message
-- sent again keeps its id, so its webhook-id is the same and receivers deduplicate on it; each
-- send is new attempts of the same delivery. Admins and owners only.

-- webhook.test to this endpoint (enabled), whatever types it subscribes to; at most 60 an hour
-- per organization.
create or replace function app_public.send_test_webhook(id uuid) returns app_public.webhook_deliveries
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
  set timezone to 'UTC'
as $$
declare
  v_endpoint app_public.webhook_endpoints := app_private.webhook_endpoint_for_admin(send_test_webhook.id, 'send test webhooks');
  v_message_id uuid;
  v_delivery_id uuid;
  v_delivery app_public.webhook_deliveries;
begin
  if v_endpoint.disabled_at is not null then
    perform app_hidden.raise_error('WEBHOOK_ENDPOINT_DISABLED', 'The endpoint is disabled; enable it first.');
  end if;
  perform app_private.consume_hourly_quota(v_endpoint.organization_id, 'webhookTestsPerHour', 60, 'test webhooks');
  v_message_id := app_private.emit_webhook_event(v_endpoint.organization_id, 'webhook.test', jsonb_build_object('endpoint_id', v_endpoint.id));
  v_delivery_id := app_private.queue_webhook_delivery(v_endpoint, v_message_id);
  select * into v_delivery from app_public.webhook_deliveries d
  where d.organization_id = v_endpoint.organization_id and d.id = v_delivery_id;
  return v_delivery;
end;
$$;
comment on function app_public.send_test_webhook(uuid) is
  E'@resultFieldName webhookDelivery\nSends a webhook.test event to the endpoint now (admins and owners; 60 an hour per organization). Follow its attempts in webhookAttempts.';

-- The message again to every enabled endpoint it was sent to (one already pending is left to
-- its queued attempt). Returns how many deliveries were queued.
create or replace function app_public.replay_webhook_message(id uuid) returns int
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_message app_public.webhook_messages;
  v_endpoint app_public.webhook_endpoints;
  v_count int := 0;
begin
  select * into v_message from app_public.webhook_messages m where m.id = replay_webhook_message.id;
  if not found or not v_message.organization_id = any (app_public.current_user_organization_ids()) then
    perform app_hidden.raise_error('NOT_FOUND', 'No such webhook message.');
  end if;
  perform app_private.assert_team_admin(v_message.organization_id, 'replay webhook messages');
  for v_endpoint in
    select e.* from app_public.webhook_deliveries d
    join app_public.webhook_endpoints e on e.organization_id = d.organization_id and e.id = d.endpoint_id
    where d.organization_id = v_message.organization_id and d.message_id = v_message.id
      and d.status <> 'pending' and e.disabled_at is null
  loop
    perform app_private.queue_webhook_delivery(v_endpoint, v_message.id);
    v_count := v_count + 1;
  end loop;
  return v_count;
end;
$$;
comment on function app_public.replay_webhook_message(uuid) is
  E'@resultFieldName queued\nSends a message again, with the same webhook-id, to the enabled endpoints it was sent to (admins and owners). Returns how many deliveries were queued.';

-- The deliveries an endpoint has not received since `since`: messages it wants that were never
-- sent to it (it was disabled, or did not exist yet) or whose delivery failed, oldest first, at
-- most 10,000 a call. Returns how many were queued.
create or replace function app_private.recover_webhook_deliveries(endpoint app_public.webhook_endpoints, since timestamptz) returns int
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_message_id uuid;
  v_count int := 0;
begin
  for v_message_id in
    select m.id from app_public.webhook_messages m
    left join app_public.webhook_deliveries d
      on d.organization_id = m.organization_id and d.message_id = m.id and d.endpoint_id = endpoint.id
    where m.organization_id = endpoint.organization_id
      and m.created_at >= recover_webhook_deliveries.since
      and m.event_type <> 'webhook.test'
      and (cardinality(endpoint.event_types) = 0 or m.event_type = any (endpoint.event_types))
      and (d.id is null or d.status = 'failed')
    order by m.created_at, m.id
    limit 10000
  loop
    perform app_private.queue_webhook_delivery(endpoint, v_message_id);
    v_count := v_count + 1;
  end loop;
  return v_count;
end;
$$;

-- Every message since `since` (at most 30 days back, the retention) that the endpoint wants and
-- has not received. Returns how many deliveries were queued.
create or replace function app_public.recover_webhook_endpoint(id uuid, since timestamptz) returns int
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_endpoint app_public.webhook_endpoints := app_private.webhook_endpoint_for_admin(recover_webhook_endpoint.id, 'recover webhook endpoints');
begin
  if v_endpoint.disabled_at is not null then
    perform app_hidden.raise_error('WEBHOOK_ENDPOINT_DISABLED', 'The endpoint is disabled; enable it first.');
  end if;
  if recover_webhook_endpoint.since is null or recover_webhook_endpoint.since < now() - interval '30 days' or recover_webhook_endpoint.since > now() then
    perform app_hidden.raise_error('INVALID_INPUT', 'since must be within the last 30 days.');
  end if;
  return app_private.recover_webhook_deliveries(v_endpoint, recover_webhook_endpoint.since);
end;
$$;
comment on function app_public.recover_webhook_endpoint(uuid, timestamptz) is
  E'@resultFieldName queued\nSends the endpoint every message since `since` (within 30 days) it wants and has not received, oldest first, with their original webhook-id (admins and owners; at most 10,000 a call). Returns how many.';
