-- Who may receive realtime events: asked as the subscriber (their role and claims, the same
-- settings as a request), once when they subscribe and again before every event is delivered,
-- so a logout, a removal from the organization or a revoked API key stops delivery at the next
-- event rather than at the next reconnect.

-- 'ok', 'session_ended' (logged out, session expired, API key revoked or expired: the
-- connection must close) or 'not_member' (this organization is no longer visible: the
-- subscription ends).
create or replace function app_hidden.realtime_subscriber_status(organization_id uuid) returns text
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid := app_public.current_user_id();
  v_api_key_id uuid := app_hidden.current_api_key_id();
begin
  if v_user_id is not null then
    if not app_hidden.session_is_live(app_public.current_session_id(), v_user_id) then
      return 'session_ended';
    end if;
  elsif v_api_key_id is not null then
    if not exists (
      select 1 from app_public.api_keys k
      where k.id = v_api_key_id and k.revoked_at is null and (k.expires_at is null or k.expires_at > now())
    ) then
      return 'session_ended';
    end if;
  else
    return 'session_ended';
  end if;
  if realtime_subscriber_status.organization_id = any (app_public.current_user_organization_ids()) then
    return 'ok';
  end if;
  return 'not_member';
end;
$$;
comment on function app_hidden.realtime_subscriber_status(uuid) is
  'Whether the caller may still receive this organization''s events: ok, session_ended or not_member.';

-- Authorises a subscription and names its channel. Runs as the caller (not SECURITY DEFINER):
-- the project must be visible to them under RLS. An organization the caller does not belong
-- to and one that does not exist get the same NOT_FOUND.
create or replace function app_hidden.realtime_subscribe(kind text, organization_id uuid, project_id uuid default null)
  returns text
  language plpgsql stable
as $$
declare
  v_status text := app_hidden.realtime_subscriber_status(realtime_subscribe.organization_id);
begin
  if v_status = 'session_ended' then
    perform app_hidden.raise_error('INVALID_TOKEN', 'Session has ended; sign in again.');
  elsif v_status <> 'ok' then
    perform app_hidden.raise_error('NOT_FOUND', 'Organization not found.');
  end if;
  if realtime_subscribe.project_id is not null and not exists (
    select 1 from app_public.projects p
    where p.organization_id = realtime_subscribe.organization_id and p.id = realtime_subscribe.project_id
  ) then
    perform app_hidden.raise_error('NOT_FOUND', 'Project not found.');
  end if;
  return app_hidden.realtime_topic(kind, realtime_subscribe.organization_id);
end;
$$;
comment on function app_hidden.realtime_subscribe(text, uuid, uuid) is
  'Checks that the caller may follow this organization (and project) and returns the channel to LISTEN on.';

-- The realtime budgets of an organization's plan (nulls: the server's defaults). Answers only
-- for an organization the caller belongs to (nulls otherwise); the server asks it through
-- realtime_follow().
create or replace function app_hidden.realtime_organization_limits(organization_id uuid,
  out max_sockets int, out max_subscriptions int)
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
declare
  v_plan app_public.plans;
begin
  if not realtime_organization_limits.organization_id = any (app_public.current_user_organization_ids()) then
    return;
  end if;
  v_plan := app_private.organization_plan(realtime_organization_limits.organization_id);
  max_sockets := v_plan.max_realtime_sockets;
  max_subscriptions := v_plan.max_realtime_subscriptions;
end;
$$;
comment on function app_hidden.realtime_organization_limits(uuid) is
  'The websocket and subscription budgets of the organization''s plan (null: the server default).';

-- What the server asks when a subscription starts (replaces realtime_subscribe for servers of
-- this version; realtime_subscribe stays for servers of the previous one during a rolling
-- deploy): the same authorisation and channel, plus the plan's budgets. Runs as the caller.
create or replace function app_hidden.realtime_follow(kind text, organization_id uuid, project_id uuid default null,
  out channel text, out max_sockets int, out max_subscriptions int)
  language plpgsql volatile
as $$
begin
  channel := app_hidden.realtime_subscribe(kind, realtime_follow.organization_id, realtime_follow.project_id);
  select l.max_sockets, l.max_subscriptions into max_sockets, max_subscriptions
  from app_hidden.realtime_organization_limits(realtime_follow.organization_id) l;
end;
$$;
comment on function app_hidden.realtime_follow(text, uuid, uuid) is
  'Authorises a subscription: its channel and the organization''s realtime budgets (null: server defaults).';

-- One event, every subscriber of this process at once (issue 25, A5): instead of a transaction
-- per subscriber per event, the server sends the distinct principals following the
-- organization and gets, for each, what realtime_subscriber_status() would answer as them:
-- 'ok', 'session_ended' (logged out, expired or idle session, revoked or expired key: close
-- the socket) or 'not_member' (end the subscription). subscribers: a JSON array of
-- {"p": principal, "u": user id, "s": session id} or {"p": principal, "k": API key id}.
-- Called by the server as the owner; never by an app role.
create or replace function app_private.realtime_deliveries(organization_id uuid, subscribers jsonb)
  returns table (principal text, status text)
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  return query
  with s as (
    select e->>'p' as principal, (e->>'u')::uuid as user_id, (e->>'s')::uuid as session_id, (e->>'k')::uuid as api_key_id
    from jsonb_array_elements(subscribers) e
  )
  select s.principal,
    case
      when s.user_id is not null then
        case
          when s.session_id is null or not app_hidden.session_is_live(s.session_id, s.user_id) then 'session_ended'
          when exists (
            select 1 from app_public.organization_members m
            join app_public.organizations o on o.id = m.organization_id
            where m.organization_id = realtime_deliveries.organization_id and m.user_id = s.user_id and o.deleted_at is null
          ) then 'ok'
          else 'not_member'
        end
      when s.api_key_id is not null then
        case
          when not exists (
            select 1 from app_public.api_keys k
            where k.id = s.api_key_id and k.revoked_at is null and (k.expires_at is null or k.expires_at > now())
          ) then 'session_ended'
          when exists (
            select 1 from app_public.api_keys k
            join app_public.organizations o on o.id = k.organization_id
            where k.id = s.api_key_id and k.organization_id = realtime_deliveries.organization_id and o.deleted_at is null
          ) then 'ok'
          else 'not_member'
        end
      else 'session_ended'
    end
  from s;
end;
$$;
comment on function app_private.realtime_deliveries(uuid, jsonb) is
  'For one event: which of the given subscribers may still receive the organization''s events (ok, session_ended, not_member).';

-- A notification too large to carry its row (over NOTIFY's 8,000 bytes: a generation with a
-- large metadata document) names the row only; the server reads it here, once per event, from
-- the organization the subscribers follow (a notification naming another organization's row
-- finds nothing). The row as it is now, not as it was: documented.
create or replace function app_private.realtime_current_row(kind text, organization_id uuid, id uuid) returns text
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
begin
  if kind = 'generations' then
    return (select g::text from app_public.generations g
            where g.organization_id = realtime_current_row.organization_id and g.id = realtime_current_row.id);
  end if;
  return null;
end;
$$;
comment on function app_private.realtime_current_row(text, uuid, uuid) is
  'The row a notification too large to carry it names, read once per event within the subscribed organization.';
