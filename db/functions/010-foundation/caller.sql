-- Who is calling: the transaction's user, session and API key, whether the session is live, and the
-- organizations and users the caller may see (the helpers every policy reads).

create or replace function app_public."current_user"() returns app_public.users
  language sql stable
  set search_path = pg_catalog, public
as $$
  select u.* from app_public.users u where u.id = app_public.current_user_id();
$$;
comment on function app_public."current_user"() is 'The signed-in user, or null.';

create or replace function app_public.current_user_id() returns uuid
  language sql stable parallel safe
as $$
  select nullif(current_setting('jwt.claims.user_id', true), '')::uuid;
$$;
comment on function app_public.current_user_id() is E'@behavior -*\nThe signed-in user''s id, or null.';

create or replace function app_public.current_session_id() returns uuid
  language sql stable parallel safe
as $$
  select nullif(current_setting('jwt.claims.session_id', true), '')::uuid;
$$;
comment on function app_public.current_session_id() is E'@behavior -*\nThe current session''s id, or null.';

create or replace function app_hidden.current_api_key_id() returns uuid
  language sql stable parallel safe
as $$
  select nullif(current_setting('jwt.claims.api_key_id', true), '')::uuid;
$$;
comment on function app_hidden.current_api_key_id() is 'The API key the request was made with, or null.';

-- Live: not revoked, not past its expiry, and used within the idle timeout
-- (account_settings.session_idle_timeout, see sessions.sql). The rule has its one text here, in
-- this view, which both readers query: session_is_live() below and app_hidden.start_request()
-- (request.sql), which runs on every request and reads the view itself rather than calling
-- session_is_live(): a second SECURITY DEFINER call per request cost a median 12 µs of backend
-- CPU (bench/request-start.ts). The idle timeout is read from the settings row itself rather than
-- through app_private.account_settings(), whose whole row (attempt_limits is a large jsonb) cost
-- more than the session lookup. use_unrecorded: the use is recorded (last_used_at) at most once a
-- minute, so a busy session writes once a minute, not per request.
create or replace view app_private.live_sessions as
  select s.id, s.user_id, s.last_used_at < now() - interval '1 minute' as use_unrecorded
  from app_private.sessions s, app_private.account_settings a
  where a.id
    and s.revoked_at is null
    and s.expires_at > now()
    and s.last_used_at > now() - a.session_idle_timeout;
comment on view app_private.live_sessions is
  'Sessions that are live now (not revoked, not expired, not idle too long), and whether their use is due to be recorded.';

-- Records a live session's use, for the readers of live_sessions when it says use_unrecorded.
-- Never waits for a lock: a row another transaction holds is another request of the same session
-- recording the use right now, and waiting for it would hold this request for the whole of that one's.
create or replace function app_private.record_session_use(session_id uuid) returns void
  language sql volatile
  set search_path = pg_catalog, public
as $$
  update app_private.sessions s set last_used_at = now()
  where s.id = (select t.id from app_private.sessions t where t.id = record_session_use.session_id for update skip locked);
$$;

-- For callers outside a request transaction (the websocket's credentials, the identity routes,
-- the realtime subscribers' sweep): whether a session is live for that user, recording its use.
create or replace function app_hidden.session_is_live(session_id uuid, user_id uuid) returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_use_unrecorded boolean;
begin
  select l.use_unrecorded into v_use_unrecorded
  from app_private.live_sessions l
  where l.id = session_is_live.session_id and l.user_id = session_is_live.user_id;
  if not found then
    return false;
  end if;
  if v_use_unrecorded then
    perform app_private.record_session_use(session_is_live.session_id);
  end if;
  return true;
end;
$$;

-- The organizations the caller belongs to with at least min_role (not deleted), for functions that
-- check membership (policies read the same answer from the settings start_request() made). For
-- a request made with an API key (and no user): the key's organization, if the key is live, the
-- organization is not deleted and the key's role is at least min_role.
create or replace function app_public.current_user_organization_ids(
  min_role app_public.organization_role default 'member'
) returns uuid[]
  -- PL/pgSQL, not SQL: a SECURITY DEFINER SQL function is never inlined, so PostgreSQL parsed
  -- and planned its body on every call (2-6 ms per statement under load, measured in
  -- bench/rls-helper.ts); PL/pgSQL keeps its plans per connection.
  language plpgsql stable security definer parallel safe
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid := app_public.current_user_id();
  v_api_key_id uuid;
  v_ids uuid[];
  v_cached text;
begin
  -- Inside a request, app_hidden.start_request() has read them already (010-foundation/request.sql).
  v_cached := case min_role
    when 'member' then current_setting('tenantbase.organization_ids', true)
    when 'admin' then current_setting('tenantbase.admin_organization_ids', true)
  end;
  if v_cached <> '' then
    return v_cached::uuid[];
  end if;
  if v_user_id is not null then
    select coalesce(array_agg(m.organization_id), '{}') into v_ids
    from app_public.organization_members m
    join app_public.organizations o on o.id = m.organization_id
    where m.user_id = v_user_id
      and m.role >= min_role
      and o.deleted_at is null;
    return v_ids;
  end if;
  v_api_key_id := app_hidden.current_api_key_id();
  if v_api_key_id is not null then
    select coalesce(array_agg(k.organization_id), '{}') into v_ids
    from app_public.api_keys k
    join app_public.organizations o on o.id = k.organization_id
    where k.id = v_api_key_id
      and k.revoked_at is null
      and (k.expires_at is null or k.expires_at > now())
      and k.role >= min_role
      and o.deleted_at is null;
    return v_ids;
  end if;
  return '{}'::uuid[];
end;
$$;
comment on function app_public.current_user_organization_ids(app_public.organization_role) is
  E'@behavior -*\nIds of the organizations the caller belongs to with at least min_role.';

-- The helpers every request calls, as PL/pgSQL: SECURITY DEFINER SQL functions are never
-- inlined, so their bodies were parsed and planned on each call; PL/pgSQL caches its plans per
-- connection. (current_user_organization_ids gets the same treatment where the API-key version
-- replaces it.)
create or replace function app_hidden.current_user_visible_user_ids() returns uuid[]
  language plpgsql stable security definer parallel safe
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid := app_public.current_user_id();
begin
  return array(
    select v_user_id
    union
    select m.user_id
    from app_public.organization_members m
    where m.organization_id = any (app_public.current_user_organization_ids())
  );
end;
$$;
