-- The start of every request transaction. Right after the caller's settings (role and claims),
-- the server (server/request-transaction.ts, in the same round trip) and withSettings()
-- (db/transaction.ts) call app_hidden.start_request(), which
--   1. refuses a token whose session was logged out or expired with INVALID_TOKEN: logout takes
--      effect on the very next request, checked in the request's own transaction rather than by
--      a separate query before it (API keys are checked, and their use counted, once per request
--      by app_hidden.authenticate_api_key before it; a key revoked since sees nothing here);
--   2. reads the caller's organizations once and hands them to the policies as two
--      transaction settings, tenantbase.organization_ids and tenantbase.admin_organization_ids
--      (uuid[] text). A tenant policy is then a plain expression,
--        organization_id = any (current_setting('tenantbase.organization_ids')::uuid[])
--      with no subquery and no function of ours: evaluated once per scan as an index condition,
--      and the form Citus accepts on a distributed table.
-- A statement that reaches a tenant table as app_user without start_request fails (the setting
-- is missing or empty, and '' is no uuid[]): closed, and loud.
--
-- A membership change inside the transaction (createOrganization, acceptInvitation, leaving, a
-- role change, deleting or restoring an organization) must be visible to the request's later
-- statements: the statement triggers below refresh the settings after each such change.

create or replace function app_hidden.refresh_caller_organizations() returns void
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid := app_public.current_user_id();
  v_session_id uuid := app_public.current_session_id();
  v_api_key_id uuid := app_hidden.current_api_key_id();
  v_member uuid[] := '{}';
  v_admin uuid[] := '{}';
begin
  if v_user_id is not null then
    select coalesce(array_agg(m.organization_id), '{}'),
           coalesce(array_agg(m.organization_id) filter (where m.role >= 'admin'), '{}')
      into v_member, v_admin
    from app_public.organization_members m
    join app_public.organizations o on o.id = m.organization_id
    where m.user_id = v_user_id
      and o.deleted_at is null
      -- Organization SSO (040-organization-sso/sso-required.sql): an organization that requires
      -- SSO counts only for a session made through its connection, or for an owner's session
      -- that broke the glass for it (audited). CASE: no lookup at all for the others.
      and case when not o.sso_required then true
               else exists (select 1 from app_private.sessions s
                            left join app_public.sso_connections c on c.id = s.sso_connection_id
                            where s.id = v_session_id
                              and (c.organization_id = o.id
                                   or (s.sso_break_glass_organization_id = o.id and m.role = 'owner')))
          end
      -- MFA policy (050-mfa/mfa-policy.sql): an organization requiring a second factor is left
      -- out of a session that has not given one. The session is read only when needed.
      and (o.mfa_required_at is null or o.mfa_required_at > now()
           or (select s.aal from app_private.sessions s where s.id = v_session_id) = 'aal2');
  elsif v_api_key_id is not null then
    -- A key never acts with more than its creator's current role in the organization, and not
    -- at all once its creator is no longer a member (200-team/api-keys.sql): one primary-key
    -- probe, read in this transaction, so no demotion can race past it.
    select coalesce(array_agg(k.organization_id), '{}'),
           coalesce(array_agg(k.organization_id) filter (where k.role >= 'admin' and m.role >= 'admin'), '{}')
      into v_member, v_admin
    from app_public.api_keys k
    join app_public.organizations o on o.id = k.organization_id
    join app_public.organization_members m on m.organization_id = k.organization_id and m.user_id = k.created_by
    where k.id = v_api_key_id
      and k.revoked_at is null
      and (k.expires_at is null or k.expires_at > now())
      and o.deleted_at is null;
  end if;
  perform set_config('tenantbase.organization_ids', v_member::text, true),
          set_config('tenantbase.admin_organization_ids', v_admin::text, true);
end;
$$;
comment on function app_hidden.refresh_caller_organizations() is
  'Reads the caller''s organizations (member and admin) into the transaction settings the policies compare with.';

-- The hot path of every request: the session check, one query for the memberships, and the
-- settings assigned as plain expressions. Where one of the caller's organizations requires SSO
-- or MFA, refresh_caller_organizations() (which the triggers below also call mid-transaction)
-- makes the lookup with those policies instead.
create or replace function app_hidden.start_request() returns void
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid := app_public.current_user_id();
  v_session_id uuid;
  v_use_unrecorded boolean;
  v_member uuid[];
  v_admin uuid[];
  v_ignored text;
  v_policy boolean;
begin
  if v_user_id is null then
    -- anonymous, or an API key (checked and counted by app_hidden.authenticate_api_key before
    -- the request; one revoked since answers no organization here, so the request sees nothing)
    perform app_hidden.refresh_caller_organizations();
    return;
  end if;
  -- The server sends the token's session with every user (a JWT without one is refused);
  -- SQL-level callers acting as a user (jobs, tests) may act without one. Whether a session is
  -- live (logged out, expired, idle too long) is decided in one place, the live_sessions view
  -- (caller.sql), read here directly: session_is_live() reads the same view, but as a second
  -- SECURITY DEFINER call it cost every request a median 12 µs of backend CPU.
  v_session_id := app_public.current_session_id();
  if v_session_id is not null then
    select l.use_unrecorded into v_use_unrecorded
    from app_private.live_sessions l
    where l.id = v_session_id and l.user_id = v_user_id;
    if not found then
      perform app_hidden.raise_error('INVALID_TOKEN', 'Session has ended; sign in again.');
    end if;
    if v_use_unrecorded then
      perform app_private.record_session_use(v_session_id);
    end if;
  end if;
  -- Fast path: the memberships alone, and whether any of those organizations has a sign-in policy
  -- (SSO or MFA required). Almost no request's organizations do, and the lookup with the policy
  -- clauses costs about 10 µs more backend CPU per request even when they pass
  -- (bench/request-start.ts).
  select coalesce(array_agg(m.organization_id), '{}'),
         coalesce(array_agg(m.organization_id) filter (where m.role >= 'admin'), '{}'),
         coalesce(bool_or(o.sso_required or o.mfa_required_at is not null), false)
    into v_member, v_admin, v_policy
  from app_public.organization_members m
  join app_public.organizations o on o.id = m.organization_id
  where m.user_id = v_user_id
    and o.deleted_at is null;
  if v_policy then
    -- The lookup with the policies, in its one place (above): it decides for all of them.
    perform app_hidden.refresh_caller_organizations();
    return;
  end if;
  v_ignored := set_config('tenantbase.organization_ids', v_member::text, true);
  v_ignored := set_config('tenantbase.admin_organization_ids', v_admin::text, true);
end;
$$;
comment on function app_hidden.start_request() is
  'First statement of every request transaction: INVALID_TOKEN for an ended session; the caller''s organizations into transaction settings.';

-- Only inside a request (the settings exist): jobs and the owner role have nothing to refresh.
create or replace function app_private.tg_refresh_caller_organizations() returns trigger
  language plpgsql volatile
  set search_path = pg_catalog, public
as $$
begin
  if coalesce(current_setting('tenantbase.organization_ids', true), '') <> '' then
    perform app_hidden.refresh_caller_organizations();
  end if;
  return null;
end;
$$;

create or replace trigger _950_refresh_caller_organizations
  after insert or update or delete on app_public.organization_members
  for each statement execute function app_private.tg_refresh_caller_organizations();
create or replace trigger _950_refresh_caller_organizations
  after update of deleted_at on app_public.organizations
  for each statement execute function app_private.tg_refresh_caller_organizations();
