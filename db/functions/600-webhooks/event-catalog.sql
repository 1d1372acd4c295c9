-- The event catalog: every event type an endpoint can receive, its version, a JSON Schema of its
-- `data` and what it means. One list, here: emit_webhook_event refuses a type not in it, endpoint
-- subscriptions are checked against it, and docs/outbound-webhooks.md is compared with it by a
-- test. Exposed as the query webhookEventTypes. A change to a payload's shape that could break a
-- receiver is a new version (a new row), never an edit of an old one.

create or replace function app_public.webhook_event_types()
  returns table (name text, version int, description text, payload_schema jsonb)
  language sql immutable parallel safe
as $$
  with t (name, version, description, props, required) as (values
    ('generation.completed', 1, 'A generation succeeded and its credits were captured.',
      '{"generation_id":{"type":"string","format":"uuid"},"project_id":{"type":"string","format":"uuid"},"kind":{"type":"string"},"model":{"type":"string"},"credits_charged":{"type":"integer"},"completed_at":{"type":"string","format":"date-time"}}'::jsonb,
      array['generation_id', 'project_id', 'kind', 'model', 'credits_charged', 'completed_at']),
    ('generation.failed', 1, 'A generation failed; its reserved credits were released.',
      '{"generation_id":{"type":"string","format":"uuid"},"project_id":{"type":"string","format":"uuid"},"kind":{"type":"string"},"model":{"type":"string"},"error":{"type":["string","null"]},"completed_at":{"type":"string","format":"date-time"}}'::jsonb,
      array['generation_id', 'project_id', 'kind', 'model', 'completed_at']),
    ('credits.low_balance', 1, 'The credit balance fell below an alert threshold (from the credit alerts).',
      '{"alert_id":{"type":"string","format":"uuid"},"threshold_id":{"type":["string","null"],"format":"uuid"},"balance":{"type":"integer"},"threshold":{"type":"integer"}}'::jsonb,
      array['alert_id', 'balance', 'threshold']),
    ('credits.cap_used', 1, 'A spend cap reached an alert percentage of its limit (from the credit alerts).',
      '{"alert_id":{"type":"string","format":"uuid"},"threshold_id":{"type":["string","null"],"format":"uuid"},"spend_cap_id":{"type":"string","format":"uuid"},"percent":{"type":"integer"},"used":{"type":"integer"},"limit":{"type":"integer"},"period":{"type":"string"},"resets_at":{"type":["string","null"],"format":"date-time"}}'::jsonb,
      array['alert_id', 'spend_cap_id', 'percent', 'used', 'limit', 'period']),
    ('credits.expiring', 1, 'Granted credits will expire soon (from the credit alerts).',
      '{"alert_id":{"type":"string","format":"uuid"},"grant_id":{"type":"string","format":"uuid"},"remaining":{"type":"integer"},"expires_at":{"type":"string","format":"date-time"}}'::jsonb,
      array['alert_id', 'grant_id', 'remaining', 'expires_at']),
    ('credits.granted', 1, 'Credits were granted to the organization (allowance, purchase, top-up, manual grant).',
      '{"grant_id":{"type":"string","format":"uuid"},"source":{"type":"string"},"amount":{"type":"integer"},"expires_at":{"type":["string","null"],"format":"date-time"}}'::jsonb,
      array['grant_id', 'source', 'amount']),
    ('subscription.updated', 1, 'The Stripe subscription was created or changed status, plan or cancellation.',
      '{"status":{"type":"string"},"plan_id":{"type":["string","null"]},"plan_interval":{"type":["string","null"]},"current_period_end":{"type":["string","null"],"format":"date-time"},"cancel_at_period_end":{"type":"boolean"}}'::jsonb,
      array['status', 'cancel_at_period_end']),
    ('invoice.paid', 1, 'An invoice or credit-pack purchase was paid.',
      '{"invoice_id":{"type":"string","format":"uuid"},"kind":{"type":"string"},"currency":{"type":"string"},"amount_paid":{"type":"integer"},"plan_id":{"type":["string","null"]},"credits_granted":{"type":"integer"},"paid_at":{"type":["string","null"],"format":"date-time"}}'::jsonb,
      array['invoice_id', 'kind', 'currency', 'amount_paid']),
    ('member.joined', 1, 'A user became a member of the organization.',
      '{"user_id":{"type":"string","format":"uuid"},"role":{"type":"string"}}'::jsonb,
      array['user_id', 'role']),
    ('member.left', 1, 'A member left or was removed.',
      '{"user_id":{"type":"string","format":"uuid"}}'::jsonb,
      array['user_id']),
    ('member.role_changed', 1, 'A member''s role changed.',
      '{"user_id":{"type":"string","format":"uuid"},"old_role":{"type":"string"},"new_role":{"type":"string"}}'::jsonb,
      array['user_id', 'old_role', 'new_role']),
    ('api_key.created', 1, 'An API key was created (its secret is never sent).',
      '{"api_key_id":{"type":"string","format":"uuid"},"name":{"type":"string"},"role":{"type":"string"},"expires_at":{"type":["string","null"],"format":"date-time"}}'::jsonb,
      array['api_key_id', 'name', 'role']),
    ('api_key.revoked', 1, 'An API key was revoked.',
      '{"api_key_id":{"type":"string","format":"uuid"},"name":{"type":"string"}}'::jsonb,
      array['api_key_id', 'name']),
    ('webhook.test', 1, 'Sent by sendTestWebhook to one endpoint, whatever it subscribes to.',
      '{"endpoint_id":{"type":"string","format":"uuid"}}'::jsonb,
      array['endpoint_id'])
  )
  select t.name, t.version, t.description,
         jsonb_build_object('type', 'object', 'properties', t.props, 'required', to_jsonb(t.required))
  from t
  order by t.name;
$$;
comment on function app_public.webhook_event_types() is
  'The event catalog of outbound webhooks: each type''s name, version, JSON Schema of its data, and meaning.';

-- Whether a name is in the catalog (emit and endpoint subscriptions check with it).
create or replace function app_private.is_webhook_event_type(event_type text) returns boolean
  language sql immutable parallel safe
as $$
  select exists (select 1 from app_public.webhook_event_types() t where t.name = is_webhook_event_type.event_type);
$$;
