-- Where events come from: triggers on the tables whose changes customers' systems want to know
-- about, each writing its message through app_private.emit_webhook_event in the same transaction
-- (a rollback of the change drops the message). Payloads: ids and the facts a receiver needs,
-- never a secret. The credit alerts (credits.low_balance, credits.cap_used, credits.expiring)
-- call emit_webhook_event from their own domain.
-- Every function that emits runs with TimeZone UTC: a timestamptz in a payload is written in the
-- session's TimeZone, so a database whose default is America/New_York would otherwise send
-- "2030-01-07T19:00:00-05:00" where receivers are documented to get UTC (test/db/600-webhooks).

create or replace function app_private.tg_generations_webhook_events() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
  set timezone to 'UTC'
as $$
begin
  if new.status is not distinct from old.status or new.status not in ('succeeded', 'failed') then
    return null;
  end if;
  perform app_private.emit_webhook_event(new.organization_id,
    case new.status when 'succeeded' then 'generation.completed' else 'generation.failed' end,
    jsonb_strip_nulls(jsonb_build_object(
      'generation_id', new.id, 'project_id', new.project_id, 'kind', new.kind, 'model', new.model,
      'credits_charged', case when new.status = 'succeeded' then new.credits_charged end,
      'error', case when new.status = 'failed' then new.error end,
      'completed_at', new.completed_at)));
  return null;
end;
$$;
create or replace trigger _910_webhook_events after update of status on app_public.generations
  for each row execute function app_private.tg_generations_webhook_events();

create or replace function app_private.tg_organization_members_webhook_events() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
  set timezone to 'UTC'
as $$
begin
  if tg_op = 'INSERT' then
    perform app_private.emit_webhook_event(new.organization_id, 'member.joined', jsonb_build_object('user_id', new.user_id, 'role', new.role));
  elsif tg_op = 'DELETE' then
    perform app_private.emit_webhook_event(old.organization_id, 'member.left', jsonb_build_object('user_id', old.user_id));
  elsif old.role is distinct from new.role then
    perform app_private.emit_webhook_event(new.organization_id, 'member.role_changed',
      jsonb_build_object('user_id', new.user_id, 'old_role', old.role, 'new_role', new.role));
  end if;
  return null;
end;
$$;
create or replace trigger _910_webhook_events after insert or update or delete on app_public.organization_members
  for each row execute function app_private.tg_organization_members_webhook_events();

create or replace function app_private.tg_api_keys_webhook_events() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
  set timezone to 'UTC'
as $$
begin
  if tg_op = 'INSERT' then
    perform app_private.emit_webhook_event(new.organization_id, 'api_key.created',
      jsonb_build_object('api_key_id', new.id, 'name', new.name, 'role', new.role, 'expires_at', new.expires_at));
  elsif old.revoked_at is null and new.revoked_at is not null then
    perform app_private.emit_webhook_event(new.organization_id, 'api_key.revoked', jsonb_build_object('api_key_id', new.id, 'name', new.name));
  end if;
  return null;
end;
$$;
create or replace trigger _910_webhook_events after insert or update of revoked_at on app_public.api_keys
  for each row execute function app_private.tg_api_keys_webhook_events();

create or replace function app_private.tg_subscriptions_webhook_events() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
  set timezone to 'UTC'
as $$
begin
  if tg_op = 'UPDATE'
     and (old.status, old.plan_id, old.plan_interval, old.current_period_end, old.cancel_at_period_end)
         is not distinct from (new.status, new.plan_id, new.plan_interval, new.current_period_end, new.cancel_at_period_end) then
    return null;
  end if;
  perform app_private.emit_webhook_event(new.organization_id, 'subscription.updated', jsonb_build_object(
    'status', new.status, 'plan_id', new.plan_id, 'plan_interval', new.plan_interval,
    'current_period_end', new.current_period_end, 'cancel_at_period_end', new.cancel_at_period_end));
  return null;
end;
$$;
create or replace trigger _910_webhook_events after insert or update on app_public.subscriptions
  for each row execute function app_private.tg_subscriptions_webhook_events();

create or replace function app_private.tg_invoices_webhook_events() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
  set timezone to 'UTC'
as $$
begin
  if new.status <> 'paid' or (tg_op = 'UPDATE' and old.status = 'paid') then
    return null;
  end if;
  perform app_private.emit_webhook_event(new.organization_id, 'invoice.paid', jsonb_build_object(
    'invoice_id', new.id, 'kind', new.kind, 'currency', new.currency, 'amount_paid', new.amount_paid,
    'plan_id', new.plan_id, 'credits_granted', new.credits_granted, 'paid_at', new.paid_at));
  return null;
end;
$$;
create or replace trigger _910_webhook_events after insert or update of status on app_public.invoices
  for each row execute function app_private.tg_invoices_webhook_events();

create or replace function app_private.tg_credit_grants_webhook_events() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
  set timezone to 'UTC'
as $$
begin
  perform app_private.emit_webhook_event(new.organization_id, 'credits.granted', jsonb_build_object(
    'grant_id', new.id, 'source', new.source, 'amount', new.amount, 'expires_at', new.expires_at));
  return null;
end;
$$;
create or replace trigger _910_webhook_events after insert on app_public.credit_grants
  for each row execute function app_private.tg_credit_grants_webhook_events();
