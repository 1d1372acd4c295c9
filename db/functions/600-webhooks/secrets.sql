-- Signing secrets (Standard Webhooks: whsec_ + base64 of random bytes; we use 32). The server
-- must know a secret to sign with it, so it is stored as it is, in app_private (no app role can
-- read it); the API shows it once, in the payload of createWebhookEndpoint and
-- rotateWebhookSecret. After a rotation the previous secret signs alongside the new one for 24
-- hours (both signatures in webhook-signature), so receivers can switch without losing a delivery.

create or replace trigger _100_audit_columns before insert or update on app_private.webhook_endpoint_secrets
  for each row execute function app_private.tg_audit_columns();

-- A new current secret for the endpoint; returns it.
create or replace function app_private.add_webhook_secret(organization_id uuid, endpoint_id uuid) returns text
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_secret text := 'whsec_' || encode(gen_random_bytes(32), 'base64');
begin
  insert into app_private.webhook_endpoint_secrets (organization_id, endpoint_id, secret)
  values (add_webhook_secret.organization_id, add_webhook_secret.endpoint_id, v_secret);
  return v_secret;
end;
$$;

-- Rotating: the current secret expires in 24 hours, older ones at once (at most two sign at a
-- time, however often an admin rotates), and a new current one is made.
create or replace function app_public.rotate_webhook_secret(id uuid) returns app_public.webhook_endpoint_with_secret
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_endpoint app_public.webhook_endpoints := app_private.webhook_endpoint_for_admin(rotate_webhook_secret.id, 'rotate webhook secrets');
  v_secret text;
begin
  perform app_hidden.assert_recent_second_factor(); -- step-up (050-mfa/step-up.sql)
  delete from app_private.webhook_endpoint_secrets s
  where s.organization_id = v_endpoint.organization_id and s.endpoint_id = v_endpoint.id and s.expires_at is not null;
  update app_private.webhook_endpoint_secrets s set expires_at = now() + interval '24 hours'
  where s.organization_id = v_endpoint.organization_id and s.endpoint_id = v_endpoint.id and s.expires_at is null;
  v_secret := app_private.add_webhook_secret(v_endpoint.organization_id, v_endpoint.id);
  perform app_private.record_audit_event(v_endpoint.organization_id, 'webhook_endpoint.secret_rotated', 'webhook_endpoint', v_endpoint.id, '{}');
  return (v_endpoint, v_secret)::app_public.webhook_endpoint_with_secret;
end;
$$;
comment on function app_public.rotate_webhook_secret(uuid) is
  E'@flattenPayload\nGives the endpoint a new signing secret (admins and owners), shown once in the payload. The old one keeps signing beside it for 24 hours.';

-- The secrets that sign a delivery now, newest first (for the worker only).
create or replace function app_private.webhook_signing_secrets(organization_id uuid, endpoint_id uuid) returns text[]
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select coalesce(array_agg(s.secret order by s.created_at desc, s.id desc), '{}')
  from app_private.webhook_endpoint_secrets s
  where s.organization_id = webhook_signing_secrets.organization_id and s.endpoint_id = webhook_signing_secrets.endpoint_id
    and (s.expires_at is null or s.expires_at > now());
$$;
