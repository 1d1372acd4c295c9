-- What an admin dashboard refreshes on, on the organization's `organization` channel: members
-- joining, leaving or changing role, invitations made or changed (accepted, revoked, expired,
-- resent), the plan changing (directly or through the Stripe subscription) and the
-- organization itself changing (renamed, deleted, restored), and credit alerts firing (low
-- balance, a spend cap used to a threshold, credits about to expire). Each notification is a kind and
-- ids; the rows are read by each subscriber under RLS.

create or replace function app_private.tg_organization_members_realtime() returns trigger
  language plpgsql volatile
as $$
declare
  v_row app_public.organization_members := case when tg_op = 'DELETE' then old else new end;
  v_kind text := case tg_op when 'INSERT' then 'member_joined' when 'DELETE' then 'member_left' else 'member_role_changed' end;
begin
  if tg_op = 'UPDATE' and old.role is not distinct from new.role then
    return null;
  end if;
  perform pg_notify(
    app_hidden.realtime_topic('organization', v_row.organization_id),
    json_build_object('kind', v_kind, 'user_id', v_row.user_id)::text
  );
  return null;
end;
$$;
comment on function app_private.tg_organization_members_realtime() is
  'Notifies organizationEvents subscribers of a member joining, leaving or changing role.';

create or replace trigger _950_realtime after insert or update or delete on app_public.organization_members
  for each row execute function app_private.tg_organization_members_realtime();

create or replace function app_private.tg_invitations_realtime() returns trigger
  language plpgsql volatile
as $$
begin
  perform pg_notify(
    app_hidden.realtime_topic('organization', new.organization_id),
    json_build_object(
      'kind', case tg_op when 'INSERT' then 'invitation_created' else 'invitation_updated' end,
      'invitation_id', new.id
    )::text
  );
  return null;
end;
$$;
comment on function app_private.tg_invitations_realtime() is
  'Notifies organizationEvents subscribers of an invitation made, accepted, revoked, expired or resent.';

create or replace trigger _950_realtime after insert or update on app_public.invitations
  for each row execute function app_private.tg_invitations_realtime();

create or replace function app_private.tg_organizations_realtime() returns trigger
  language plpgsql volatile
as $$
declare
  v_kind text;
begin
  if old.plan_id is distinct from new.plan_id then
    v_kind := 'plan_changed';
  elsif (old.name, old.slug, old.deleted_at) is distinct from (new.name, new.slug, new.deleted_at) then
    v_kind := 'organization_updated';
  else
    return null;
  end if;
  perform pg_notify(
    app_hidden.realtime_topic('organization', new.id),
    json_build_object('kind', v_kind)::text
  );
  return null;
end;
$$;
comment on function app_private.tg_organizations_realtime() is
  'Notifies organizationEvents subscribers of a plan change, a rename, a deletion or a restore.';

create or replace trigger _950_realtime after update on app_public.organizations
  for each row execute function app_private.tg_organizations_realtime();

create or replace function app_private.tg_subscriptions_realtime() returns trigger
  language plpgsql volatile
as $$
declare
  v_row app_public.subscriptions := case when tg_op = 'DELETE' then old else new end;
begin
  if tg_op = 'UPDATE'
     and (old.status, old.plan_id, old.cancel_at_period_end) is not distinct from (new.status, new.plan_id, new.cancel_at_period_end) then
    return null;
  end if;
  perform pg_notify(
    app_hidden.realtime_topic('organization', v_row.organization_id),
    json_build_object('kind', 'plan_changed')::text
  );
  return null;
end;
$$;
comment on function app_private.tg_subscriptions_realtime() is
  'Notifies organizationEvents subscribers when the Stripe subscription changes status or plan.';

create or replace trigger _950_realtime after insert or update or delete on app_public.subscriptions
  for each row execute function app_private.tg_subscriptions_realtime();

create or replace function app_private.tg_credit_alerts_realtime() returns trigger
  language plpgsql volatile
as $$
begin
  perform pg_notify(
    app_hidden.realtime_topic('organization', new.organization_id),
    json_build_object('kind', 'credit_alert', 'credit_alert_id', new.id)::text
  );
  return null;
end;
$$;
comment on function app_private.tg_credit_alerts_realtime() is
  'Notifies organizationEvents subscribers of a credit alert that fired (read it as creditAlert).';

create or replace trigger _950_realtime after insert on app_public.credit_alerts
  for each row execute function app_private.tg_credit_alerts_realtime();
