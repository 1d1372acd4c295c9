-- Recording a fired alert: the one place that writes app_public.credit_alerts. It queues the
-- alert's email job in the same transaction (job key credit_alert:<alert id>: a rollback
-- queues nothing, a retry of the job never doubles it); the organizationEvents notification
-- comes from the row's realtime trigger (500-realtime/organization-events.sql). The outbound
-- webhooks emit their event here too (credits.low_balance, credits.cap_used, credits.expiring).

-- How many threshold alerts (low_balance, cap_used) one organization records per UTC day. Each
-- threshold fires at most once a day or once a cap period, so 20 thresholds stay well below it;
-- it bounds what an admin could get by removing and re-adding thresholds all day (each new one
-- starts armed), and so the emails.
create or replace function app_hidden.max_credit_alerts_per_organization_per_day() returns int
  language sql immutable parallel safe
as $$
  select 50;
$$;

-- Returns the alert's id, or null when there was nothing to record (a grant already noticed, or
-- the organization's threshold alerts of the day are used up).
create or replace function app_private.record_credit_alert(
  organization_id uuid,
  kind app_public.credit_alert_kind,
  threshold_id uuid default null,
  balance_at_most bigint default null,
  available bigint default null,
  cap_id uuid default null,
  percent smallint default null,
  cap_spent bigint default null,
  cap_limit bigint default null,
  cap_period app_public.credit_spend_cap_period default null,
  cap_resets_at timestamptz default null,
  grant_id uuid default null,
  grant_remaining bigint default null,
  grant_expires_at timestamptz default null
) returns uuid
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
  set timezone to 'UTC'
as $$
#variable_conflict use_column
declare
  v_id uuid;
begin
  if record_credit_alert.kind <> 'grant_expiring' and (
       select count(*) from app_public.credit_alerts a
       where a.organization_id = record_credit_alert.organization_id
         and a.fired_at >= app_hidden.spend_cap_window_start('day', now()) and a.kind <> 'grant_expiring'
     ) >= app_hidden.max_credit_alerts_per_organization_per_day() then
    return null;
  end if;
  insert into app_public.credit_alerts (organization_id, kind, threshold_id, balance_at_most, available, cap_id, percent,
    cap_spent, cap_limit, cap_period, cap_resets_at, grant_id, grant_remaining, grant_expires_at)
  values (organization_id, kind, threshold_id, balance_at_most, available, cap_id, percent,
    cap_spent, cap_limit, cap_period, cap_resets_at, grant_id, grant_remaining, grant_expires_at)
  on conflict (organization_id, grant_id) where kind = 'grant_expiring' do nothing
  returning id into v_id;
  if v_id is null then
    return null;
  end if;
  perform graphile_worker.add_job('send_credit_alert_email',
    json_build_object('organizationId', organization_id, 'alertId', v_id),
    job_key => 'credit_alert:' || v_id::text,
    max_attempts => 10);
  -- The same alert for the organization's outbound webhook endpoints (600-webhooks), in this
  -- transaction: a spend that rolls back sends nothing.
  perform app_private.emit_webhook_event(record_credit_alert.organization_id,
    case record_credit_alert.kind when 'low_balance' then 'credits.low_balance'
      when 'cap_used' then 'credits.cap_used' else 'credits.expiring' end,
    case record_credit_alert.kind
      when 'low_balance' then jsonb_build_object('alert_id', v_id, 'threshold_id', threshold_id,
        'balance', available, 'threshold', balance_at_most)
      when 'cap_used' then jsonb_build_object('alert_id', v_id, 'threshold_id', threshold_id, 'spend_cap_id', cap_id,
        'percent', percent, 'used', cap_spent, 'limit', cap_limit, 'period', cap_period, 'resets_at', cap_resets_at)
      else jsonb_build_object('alert_id', v_id, 'grant_id', grant_id, 'remaining', grant_remaining,
        'expires_at', grant_expires_at) end);
  return v_id;
end;
$$;
comment on function app_private.record_credit_alert(uuid, app_public.credit_alert_kind, uuid, bigint, bigint, uuid, smallint,
  bigint, bigint, app_public.credit_spend_cap_period, timestamptz, uuid, bigint, timestamptz) is
  'Records a fired credit alert, queues its email job and writes its webhook event (the one writer of credit_alerts).';

-- The admins and owners an alert's email goes to: verified address, credit alert emails and
-- email notifications on, in an organization that is not deleted.
create or replace function app_private.credit_alert_recipients(organization_id uuid)
  returns table (user_id uuid, email text, name text)
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select u.id, u.email::text, u.name
  from app_public.organization_members m
  join app_public.organizations o on o.id = m.organization_id and o.deleted_at is null
  join app_public.users u on u.id = m.user_id and u.email_verified_at is not null
  left join app_public.user_settings s on s.user_id = u.id
  where m.organization_id = credit_alert_recipients.organization_id and m.role in ('admin', 'owner')
    and coalesce(s.credit_alert_emails, true) and coalesce(s.email_notifications, true)
  order by u.id;
$$;

-- The alert's job, first run: queues one email job per recipient (job key per alert and user),
-- once per alert (emails_queued_at, set in the same transaction). Returns how many were queued.
create or replace function app_private.queue_credit_alert_emails(organization_id uuid, alert_id uuid) returns int
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user uuid;
  v_count int := 0;
begin
  update app_public.credit_alerts a set emails_queued_at = now()
  where a.organization_id = queue_credit_alert_emails.organization_id and a.id = queue_credit_alert_emails.alert_id
    and a.emails_queued_at is null;
  if not found then
    return 0;
  end if;
  for v_user in select r.user_id from app_private.credit_alert_recipients(queue_credit_alert_emails.organization_id) r loop
    perform graphile_worker.add_job('send_credit_alert_email',
      json_build_object('organizationId', queue_credit_alert_emails.organization_id, 'alertId', queue_credit_alert_emails.alert_id,
                        'userId', v_user),
      job_key => 'credit_alert:' || queue_credit_alert_emails.alert_id::text || ':' || v_user::text,
      max_attempts => 10);
    v_count := v_count + 1;
  end loop;
  return v_count;
end;
$$;

-- What one recipient's email says, read when it is sent: nothing when the user is no longer a
-- recipient (demoted, removed, turned the emails off, organization deleted).
create or replace function app_private.credit_alert_email(organization_id uuid, alert_id uuid, user_id uuid)
  returns table (email text, name text, organization_name text, kind app_public.credit_alert_kind,
                 balance_at_most bigint, available bigint, percent smallint, cap_spent bigint, cap_limit bigint,
                 cap_period app_public.credit_spend_cap_period, cap_resets_at timestamptz, cap_scope app_public.credit_spend_cap_scope,
                 grant_remaining bigint, grant_expires_at timestamptz, grant_source text, fired_at timestamptz)
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select r.email, r.name, o.name, a.kind, a.balance_at_most, a.available, a.percent, a.cap_spent, a.cap_limit,
         a.cap_period, a.cap_resets_at, c.scope, a.grant_remaining, a.grant_expires_at, g.source, a.fired_at
  from app_public.credit_alerts a
  join app_public.organizations o on o.id = a.organization_id
  join app_private.credit_alert_recipients(credit_alert_email.organization_id) r on r.user_id = credit_alert_email.user_id
  left join app_public.credit_spend_caps c on c.organization_id = a.organization_id and c.id = a.cap_id
  left join app_public.credit_grants g on g.organization_id = a.organization_id and g.id = a.grant_id
  where a.organization_id = credit_alert_email.organization_id and a.id = credit_alert_email.alert_id;
$$;

create or replace trigger _100_audit_columns before insert or update on app_public.credit_alerts
  for each row execute function app_private.tg_audit_columns();
