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
