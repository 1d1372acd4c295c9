with e as (
  insert into app_public.webhook_endpoints (organization_id, url) values ($1, 'https://hooks.example.com/fixture')
  returning organization_id, id
), s as (
  insert into app_private.webhook_endpoint_secrets (organization_id, endpoint_id, secret)
  select organization_id, id, 'whsec_' || encode(gen_random_bytes(32), 'base64') from e
), m as (
  insert into app_public.webhook_messages (organization_id, event_type, payload)
  select organization_id, 'webhook.test', jsonb_build_object('endpoint_id', id) from e
  returning organization_id, id
), d as (
  insert into app_public.webhook_deliveries (organization_id, message_id, endpoint_id, status, attempt_count)
  select m.organization_id, m.id, e.id, 'succeeded', 1 from m, e
  returning organization_id, id
), l as (
  insert into app_private.webhook_attempt_leases (organization_id, delivery_id, expires_at)
  select organization_id, id, now() + interval '1 minute' from d
)
insert into app_public.webhook_attempts (organization_id, delivery_id, status_code, duration_ms, response_body)
select organization_id, id, 200, 12, 'ok' from d where $2::uuid is not null
