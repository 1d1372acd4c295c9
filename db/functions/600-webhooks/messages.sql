-- The outbox: app_private.emit_webhook_event writes an event's message, and a delivery (with its
-- job) for each enabled endpoint of the organization that wants it, in the caller's transaction,
-- so a rollback sends nothing and a commit cannot lose the event. Every event source calls it
-- (event-sources.sql here; the credit alerts call it for credits.low_balance, credits.cap_used
-- and credits.expiring). Payloads carry ids and facts, never secrets. Organizations without
-- endpoints keep no messages.

create or replace trigger _100_audit_columns before insert or update on app_public.webhook_messages
  for each row execute function app_private.tg_audit_columns();

-- Returns the message's id, or null when the organization has no endpoint (or no longer exists).
create or replace function app_private.emit_webhook_event(organization_id uuid, event_type text, payload jsonb) returns uuid
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_message_id uuid;
  v_endpoint app_public.webhook_endpoints;
begin
  if not app_private.is_webhook_event_type(emit_webhook_event.event_type) then
    raise exception 'emit_webhook_event: % is not in the event catalog', emit_webhook_event.event_type;
  end if;
  if jsonb_typeof(emit_webhook_event.payload) is distinct from 'object' or octet_length(emit_webhook_event.payload::text) > 65536 then
    raise exception 'emit_webhook_event: the payload of % must be a JSON object of at most 64 KB', emit_webhook_event.event_type;
  end if;
  -- (endpoints, disabled ones included: a disabled endpoint can recover what it missed)
  if not exists (select 1 from app_public.webhook_endpoints e where e.organization_id = emit_webhook_event.organization_id)
     or not exists (select 1 from app_public.organizations o where o.id = emit_webhook_event.organization_id) then
    return null;
  end if;
  insert into app_public.webhook_messages (organization_id, event_type, payload)
  values (emit_webhook_event.organization_id, emit_webhook_event.event_type, emit_webhook_event.payload)
  returning id into v_message_id;
  for v_endpoint in
    select * from app_public.webhook_endpoints e
    where e.organization_id = emit_webhook_event.organization_id
      and e.disabled_at is null
      and (cardinality(e.event_types) = 0 or emit_webhook_event.event_type = any (e.event_types))
      and emit_webhook_event.event_type <> 'webhook.test'
  loop
    perform app_private.queue_webhook_delivery(v_endpoint, v_message_id);
  end loop;
  return v_message_id;
end;
$$;
comment on function app_private.emit_webhook_event(uuid, text, jsonb) is
  'Writes an event of the organization for its webhook endpoints, in the current transaction (the outbox). Returns the message id, or null when it has no endpoint.';

-- Messages (with their deliveries and attempts) older than the retention; at most `batch` a call.
create or replace function app_private.prune_webhook_messages(retention interval default interval '30 days', batch int default 10000) returns int
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_count int;
begin
  with old as (
    select m.organization_id, m.id from app_public.webhook_messages m
    where m.created_at < now() - prune_webhook_messages.retention
    order by m.created_at
    limit prune_webhook_messages.batch
  )
  delete from app_public.webhook_messages m using old
  where m.organization_id = old.organization_id and m.id = old.id;
  get diagnostics v_count = row_count;
  return v_count;
end;
$$;
