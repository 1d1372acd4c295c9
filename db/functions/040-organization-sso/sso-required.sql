-- Requiring SSO, and the owners' break glass. While organizations.sso_required is on,
-- app_hidden.start_request() (010-foundation/request.sql) leaves the organization out of the
-- caller's organizations unless the request's session was made through the organization's
-- connection (sessions.sso_connection_id) or is an owner's session that broke the glass for it
-- (sessions.sso_break_glass_organization_id, still an owner): every policy then hides its rows.

-- Admins turn it on (only with a connection and a verified domain: else nobody could come in) or
-- off, and choose the role just-in-time members get.
create or replace function app_public.set_organization_sso(
  organization_id uuid, required boolean, jit_role app_public.organization_role default 'member'
) returns app_public.organizations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_org app_public.organizations;
begin
  perform app_private.assert_sso_admin(set_organization_sso.organization_id);
  if set_organization_sso.jit_role is null or set_organization_sso.jit_role = 'owner' then
    perform app_hidden.raise_error('INVALID_INPUT', 'People who join through SSO are members or admins, never owners.');
  end if;
  if coalesce(set_organization_sso.required, false) and not (
       exists (select 1 from app_public.sso_connections c where c.organization_id = set_organization_sso.organization_id)
       and exists (select 1 from app_public.sso_domains d
                   where d.organization_id = set_organization_sso.organization_id and d.verified_at is not null)) then
    perform app_hidden.raise_error('SSO_NOT_CONFIGURED', 'Add an SSO connection and verify a domain before requiring SSO.');
  end if;
  update app_public.organizations o
  set sso_required = coalesce(set_organization_sso.required, false), sso_jit_role = set_organization_sso.jit_role
  where o.id = set_organization_sso.organization_id
  returning * into v_org;
  perform app_private.record_audit_event(v_org.id, 'sso.settings_changed', 'organization', v_org.id,
    jsonb_build_object('sso_required', v_org.sso_required, 'jit_role', v_org.sso_jit_role));
  -- the caller's own view follows at once (an admin without an SSO session loses it here)
  perform app_hidden.refresh_caller_organizations();
  return v_org;
end;
$$;
comment on function app_public.set_organization_sso(uuid, boolean, app_public.organization_role) is
  E'@resultFieldName organization\nRequires (or stops requiring) sign-in through the organization''s SSO connection, and sets the role of people it provisions (admins).';

-- Break glass: an owner whose identity provider is down signs in with a password, then calls
-- this with the organization's id. Their current session (only it, until it ends) sees the
-- organization again, and an audit-log row says who, when and which session; every admin can
-- read it. Anyone else: NOT_FOUND (the organization stays invisible to them).
create or replace function app_public.break_sso_glass(organization_id uuid, reason text) returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid := app_public.current_user_id();
  v_session_id uuid := app_public.current_session_id();
begin
  if v_user_id is null or v_session_id is null or not exists (
       select 1 from app_public.organization_members m
       join app_public.organizations o on o.id = m.organization_id and o.deleted_at is null and o.sso_required
       where m.organization_id = break_sso_glass.organization_id and m.user_id = v_user_id and m.role = 'owner') then
    perform app_hidden.raise_error('NOT_FOUND', 'No organization that requires SSO has you as an owner.');
  end if;
  if length(btrim(coalesce(break_sso_glass.reason, ''))) not between 1 and 500 then
    perform app_hidden.raise_error('INVALID_INPUT', 'Say why (1 to 500 characters): it goes into the audit log.');
  end if;
  update app_private.sessions s set sso_break_glass_organization_id = break_sso_glass.organization_id
  where s.id = v_session_id and s.user_id = v_user_id;
  perform app_private.record_audit_event(break_sso_glass.organization_id, 'sso.break_glass', 'user', v_user_id,
    jsonb_build_object('session_id', v_session_id, 'reason', btrim(break_sso_glass.reason)));
  perform app_hidden.refresh_caller_organizations();
  return true;
end;
$$;
comment on function app_public.break_sso_glass(uuid, text) is
  E'@resultFieldName success\nOwners only: lets the current (password) session see an organization that requires SSO, e.g. while its identity provider is down. Audited.';
