-- When auto top-up charges: the one attempt a fall to or below the threshold starts (within the
-- rule's monthly count and money ceiling, its decline back-off, its pause, and a burst limit of
-- three attempts in ten minutes), and what the worker records about it.

-- The calendar month (UTC) the monthly count and ceiling count in.
create or replace function app_hidden.auto_top_up_month_start(at timestamptz) returns timestamptz
  language sql immutable strict parallel safe
as $$
  select date_trunc('month', at at time zone 'UTC') at time zone 'UTC';
$$;

-- Burst limit: at most this many attempts in auto_top_up_burst_window(); past it the admins are
-- told (once per window) and nothing is charged.
create or replace function app_hidden.auto_top_up_burst_limit() returns int
  language sql immutable parallel safe
as $$
  select 3;
$$;

create or replace function app_hidden.auto_top_up_burst_window() returns interval
  language sql immutable parallel safe
as $$
  select interval '10 minutes';
$$;

-- How long a declined card rests before the rule tries it again.
create or replace function app_hidden.auto_top_up_decline_backoff() returns interval
  language sql immutable parallel safe
as $$
  select interval '1 hour';
$$;

-- Queues a mail to the organization's admins and owners (workers/tasks/send_auto_top_up_email.ts):
-- declined, authentication_required or burst. The job key makes each mail once per attempt (per
-- rule for a burst, where the caller already keeps it to one a window).
create or replace function app_private.queue_auto_top_up_email(organization_id uuid, attempt_id uuid, kind text) returns void
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  if kind not in ('declined', 'authentication_required', 'burst') then
    raise exception 'unknown auto top-up mail %', kind;
  end if;
  perform graphile_worker.add_job('send_auto_top_up_email',
    json_build_object('organizationId', queue_auto_top_up_email.organization_id, 'attemptId', attempt_id, 'kind', kind),
    job_key => format('auto-top-up-mail:%s:%s:%s', queue_auto_top_up_email.organization_id, kind,
                      coalesce(attempt_id::text, to_char(now() at time zone 'UTC', 'YYYYMMDDHH24MI'))),
    max_attempts => 10);
end;
$$;

-- Called by the credit_accounts trigger (top-up-trigger.sql) when available credits went down:
-- starts an attempt and queues its job if the rule says so. Returns the attempt id, or null.
-- Runs under the account's row lock (every spend and grant takes it), so concurrent spends of
-- one organization come here one at a time; the partial unique index on open attempts makes a
-- second open attempt impossible anyway.
create or replace function app_private.start_auto_top_up(organization_id uuid, available bigint) returns uuid
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_rule app_public.auto_top_up_rules;
  v_package app_public.credit_packages;
  v_month timestamptz := app_hidden.auto_top_up_month_start(now());
  v_count int;
  v_spent bigint;
  v_recent int;
  v_quantity int;
  v_id uuid;
begin
  select * into v_rule from app_public.auto_top_up_rules r where r.organization_id = start_auto_top_up.organization_id;
  if not found or not v_rule.enabled or v_rule.paused_at is not null or available > v_rule.threshold
     or v_rule.retry_after > now() then
    return null;
  end if;
  if exists (select 1 from app_public.auto_top_up_attempts a
             where a.organization_id = start_auto_top_up.organization_id and a.status in ('pending', 'processing')) then
    return null;
  end if;
  if not exists (select 1 from app_private.auto_top_up_payment_methods m where m.organization_id = start_auto_top_up.organization_id) then
    return null;
  end if;
  select * into v_package from app_public.credit_packages p where p.id = v_rule.credit_package_id;
  if not v_package.active or v_package.unit_amount is null or v_package.currency is distinct from v_rule.currency then
    return null;
  end if;

  -- Burst: the rule's own limits would allow it, but this many charges this fast means something
  -- is cycling; stop and tell a person. Canceled attempts count too: they bound the rows that
  -- turning the rule off and on between spends can make.
  select count(*) into v_recent from app_public.auto_top_up_attempts a
  where a.organization_id = start_auto_top_up.organization_id
    and a.created_at > now() - app_hidden.auto_top_up_burst_window();
  if v_recent >= app_hidden.auto_top_up_burst_limit() then
    if v_rule.burst_alerted_at is null or v_rule.burst_alerted_at <= now() - app_hidden.auto_top_up_burst_window() then
      update app_public.auto_top_up_rules r set burst_alerted_at = now()
      where r.organization_id = start_auto_top_up.organization_id;
      raise log 'auto top-up burst: organization % made % attempts within %', start_auto_top_up.organization_id,
        v_recent, app_hidden.auto_top_up_burst_window();
      perform app_private.record_audit_event(start_auto_top_up.organization_id, 'auto_top_up.burst', 'auto_top_up_rule',
        null, jsonb_build_object('attempts', v_recent, 'available', available));
      perform app_private.queue_auto_top_up_email(start_auto_top_up.organization_id, null, 'burst');
    end if;
    return null;
  end if;

  -- The month's count (every attempt that reached or may reach Stripe) and money (what was or
  -- may still be charged: not the declined or canceled ones).
  select count(*) filter (where a.status <> 'canceled'),
         coalesce(sum(a.amount) filter (where a.status not in ('canceled', 'failed')), 0)
    into v_count, v_spent
  from app_public.auto_top_up_attempts a
  where a.organization_id = start_auto_top_up.organization_id and a.created_at >= v_month;
  if v_count >= v_rule.max_per_month then
    return null;
  end if;
  v_quantity := case when v_rule.target_balance is null then 1
    else least(100, greatest(1, ceil((v_rule.target_balance - available)::numeric / v_package.credits)::int)) end;
  -- Within the ceiling: fewer packs if that fits, none if not even one does.
  v_quantity := least(v_quantity, ((v_rule.monthly_limit_amount - v_spent) / v_package.unit_amount)::int);
  if v_quantity < 1 then
    return null;
  end if;

  insert into app_public.auto_top_up_attempts (organization_id, credit_package_id, quantity, credits, amount, currency,
    balance_before, rule_max_per_month, rule_monthly_limit_amount)
  values (start_auto_top_up.organization_id, v_package.id, v_quantity, v_quantity * v_package.credits,
          v_quantity * v_package.unit_amount, v_package.currency, available, v_rule.max_per_month, v_rule.monthly_limit_amount)
  on conflict do nothing
  returning id into v_id;
  if v_id is null then
    return null;
  end if;
  perform graphile_worker.add_job('auto_top_up',
    json_build_object('organizationId', start_auto_top_up.organization_id, 'attemptId', v_id),
    job_key => 'auto-top-up:' || start_auto_top_up.organization_id,
    max_attempts => 10);
  return v_id;
end;
$$;

-- The worker takes a pending attempt: it becomes processing, with what the PaymentIntent needs.
-- An attempt whose rule was turned off, paused or lost its card meanwhile is canceled here
-- instead. A processing one (the job ran before and crashed) comes back as it is: the same
-- Stripe idempotency key gives the same PaymentIntent. Any other status: nothing to do.
create or replace function app_private.begin_auto_top_up_attempt(attempt_id uuid)
returns table (
  organization_id uuid, status text, amount bigint, currency text, credits bigint, quantity int,
  stripe_customer_id text, stripe_payment_method_id text, stripe_price_id text, credit_package_id uuid
)
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_attempt app_public.auto_top_up_attempts;
  v_rule app_public.auto_top_up_rules;
  v_customer text;
  v_method text;
begin
  select * into v_attempt from app_public.auto_top_up_attempts a where a.id = begin_auto_top_up_attempt.attempt_id for update;
  if not found then
    return;
  end if;
  select * into v_rule from app_public.auto_top_up_rules r where r.organization_id = v_attempt.organization_id;
  select c.stripe_customer_id into v_customer from app_private.stripe_customers c where c.organization_id = v_attempt.organization_id;
  select m.stripe_payment_method_id into v_method from app_private.auto_top_up_payment_methods m
  where m.organization_id = v_attempt.organization_id;
  if v_attempt.status = 'pending' then
    if v_rule.organization_id is null or not v_rule.enabled or v_rule.paused_at is not null
       or v_customer is null or v_method is null then
      update app_public.auto_top_up_attempts a set status = 'canceled', completed_at = now()
      where a.organization_id = v_attempt.organization_id and a.id = v_attempt.id
      returning * into v_attempt;
    else
      update app_public.auto_top_up_attempts a set status = 'processing'
      where a.organization_id = v_attempt.organization_id and a.id = v_attempt.id
      returning * into v_attempt;
    end if;
  end if;
  return query select v_attempt.organization_id, v_attempt.status, v_attempt.amount, v_attempt.currency, v_attempt.credits,
    v_attempt.quantity, v_customer, v_method,
    (select p.stripe_price_id from app_public.credit_packages p where p.id = v_attempt.credit_package_id),
    v_attempt.credit_package_id;
end;
$$;

-- A charge the bank refused (the worker's answer from Stripe, or payment_intent.payment_failed):
-- the attempt fails, the rule rests for the back-off, and the admins get Stripe's decline code.
-- Only an open attempt changes (a later success is never undone). Returns whether it changed.
create or replace function app_private.fail_auto_top_up_attempt(attempt app_public.auto_top_up_attempts, payment_intent_id text, decline_code text)
returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_code text := left(coalesce(decline_code, 'card_declined'), 100);
begin
  if attempt.status not in ('pending', 'processing') then
    return false;
  end if;
  update app_public.auto_top_up_attempts a
  set status = 'failed', decline_code = v_code, completed_at = now(),
      stripe_payment_intent_id = coalesce(a.stripe_payment_intent_id, payment_intent_id)
  where a.organization_id = attempt.organization_id and a.id = attempt.id;
  update app_public.auto_top_up_rules r
  set retry_after = now() + app_hidden.auto_top_up_decline_backoff(), last_decline_code = v_code
  where r.organization_id = attempt.organization_id;
  perform app_private.record_audit_event(attempt.organization_id, 'auto_top_up.declined', 'auto_top_up_attempt', attempt.id,
    jsonb_build_object('decline_code', v_code));
  perform app_private.queue_auto_top_up_email(attempt.organization_id, attempt.id, 'declined');
  return true;
end;
$$;

-- What the worker learned from Stripe about an attempt it is processing:
--   sent                     the PaymentIntent exists (succeeded or processing): the credits
--                            come with payment_intent.succeeded, through the event intake
--   declined                 the card was declined (decline_code)
--   authentication_required  the bank wants the cardholder: action_url is where they complete
--                            the payment; auto top-up pauses until it succeeds
-- An attempt that is no longer open (the webhook came first) keeps its state. Returns the
-- attempt's status afterwards.
create or replace function app_private.record_auto_top_up_result(
  attempt_id uuid, outcome text, payment_intent_id text, decline_code text default null, action_url text default null
) returns text
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_attempt app_public.auto_top_up_attempts;
begin
  if outcome not in ('sent', 'declined', 'authentication_required') then
    raise exception 'unknown auto top-up outcome %', outcome;
  end if;
  if payment_intent_id is not null and payment_intent_id !~ '^pi_[A-Za-z0-9_]+$' then
    raise exception 'not a Stripe PaymentIntent id' using errcode = '22023';
  end if;
  select * into v_attempt from app_public.auto_top_up_attempts a where a.id = record_auto_top_up_result.attempt_id for update;
  if not found then
    raise exception 'auto top-up attempt % does not exist', attempt_id;
  end if;
  -- The PaymentIntent this attempt made, once known, never changes.
  if payment_intent_id is not null and v_attempt.stripe_payment_intent_id is null then
    update app_public.auto_top_up_attempts a set stripe_payment_intent_id = payment_intent_id
    where a.organization_id = v_attempt.organization_id and a.id = v_attempt.id
    returning * into v_attempt;
  end if;
  if v_attempt.status not in ('pending', 'processing') then
    return v_attempt.status;
  end if;
  if outcome = 'declined' then
    perform app_private.fail_auto_top_up_attempt(v_attempt, payment_intent_id, decline_code);
    return 'failed';
  elsif outcome = 'authentication_required' then
    update app_public.auto_top_up_attempts a
    set status = 'requires_action', decline_code = 'authentication_required', action_url = left(record_auto_top_up_result.action_url, 2000)
    where a.organization_id = v_attempt.organization_id and a.id = v_attempt.id;
    update app_public.auto_top_up_rules r set paused_at = now(), paused_reason = 'authentication_required'
    where r.organization_id = v_attempt.organization_id;
    perform app_private.record_audit_event(v_attempt.organization_id, 'auto_top_up.authentication_required',
      'auto_top_up_attempt', v_attempt.id, '{}');
    perform app_private.queue_auto_top_up_email(v_attempt.organization_id, v_attempt.id, 'authentication_required');
    return 'requires_action';
  end if;
  return v_attempt.status;
end;
$$;

create or replace trigger _100_audit_columns before insert or update on app_public.auto_top_up_attempts
  for each row execute function app_private.tg_audit_columns();
