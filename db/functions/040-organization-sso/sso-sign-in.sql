-- Signing in through an organization's connection, and just-in-time membership. The server runs
-- the OIDC flow against the connection's issuer (server/identity/sso.ts), then hands the verified
-- ID token's claims here. An organization's identity provider speaks only for the organization's
-- verified domains: an address outside them is refused (SSO_DOMAIN_NOT_VERIFIED) before any
-- account is looked at, so a hostile organization's provider cannot claim someone else's address.
-- Inside them, the address must be verified by the provider, and the account rules are section
-- 1's (030-identities/identity-linking.sql). A person who is not yet a member becomes one with
-- the organization's sso_jit_role, within its plan's seats (SEAT_LIMIT_REACHED, nothing made).

create or replace function app_private.sign_in_with_sso(
  connection_id uuid, issuer text, subject text, email text, email_verified boolean, name text
) returns uuid
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_connection app_public.sso_connections;
  v_org app_public.organizations;
  v_email text := left(app_hidden.normalize_email(sign_in_with_sso.email), 320);
  v_identity_id uuid;
  v_user_id uuid;
begin
  select c.* into v_connection from app_public.sso_connections c where c.id = sign_in_with_sso.connection_id;
  select o.* into v_org from app_public.organizations o where o.id = v_connection.organization_id and o.deleted_at is null;
  if v_connection.id is null or v_org.id is null or rtrim(sign_in_with_sso.issuer, '/') is distinct from rtrim(v_connection.issuer, '/') then
    perform app_hidden.raise_error('SIGN_IN_FAILED', 'This SSO connection no longer exists.');
  end if;
  if v_email is null or not exists (
       select 1 from app_public.sso_domains d
       where d.organization_id = v_org.id and d.verified_at is not null
         and d.domain = split_part(v_email, '@', 2)) then
    perform app_hidden.raise_error('SSO_DOMAIN_NOT_VERIFIED',
      'Your address is not in a domain this organization has verified for SSO.');
  end if;
  v_identity_id := app_private.sign_in_with_identity('sso', sign_in_with_sso.issuer, sign_in_with_sso.subject,
    v_email, sign_in_with_sso.email_verified, sign_in_with_sso.name, null);
  select i.user_id into v_user_id from app_private.identities i where i.id = v_identity_id;
  if not exists (select 1 from app_public.organization_members m where m.organization_id = v_org.id and m.user_id = v_user_id) then
    -- locks the organization's counter row: two first sign-ins cannot both take the last seat
    perform app_private.assert_seat_available(v_org.id, 1);
    insert into app_public.organization_members (organization_id, user_id, role)
    values (v_org.id, v_user_id, v_org.sso_jit_role)
    on conflict do nothing;
    perform app_private.record_audit_event(v_org.id, 'sso.member_provisioned', 'user', v_user_id,
      jsonb_build_object('role', v_org.sso_jit_role, 'connection_id', v_connection.id));
  end if;
  return v_identity_id;
end;
$$;
comment on function app_private.sign_in_with_sso(uuid, text, text, text, boolean, text) is
  'The account an SSO sign-in reaches (only for the organization''s verified domains), made a member just in time.';

-- The one-time code of an SSO sign-in: exchange_sign_in_code opens a session with method 'sso'
-- that records the connection (what start_request checks).
create or replace function app_private.issue_sso_sign_in_code(identity_id uuid, connection_id uuid) returns text
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_code text := app_private.issue_sign_in_code(issue_sso_sign_in_code.identity_id);
begin
  update app_private.sign_in_codes c set sso_connection_id = issue_sso_sign_in_code.connection_id
  where c.code_hash = digest(v_code, 'sha256');
  return v_code;
end;
$$;
comment on function app_private.issue_sso_sign_in_code(uuid, uuid) is
  'A sign-in code whose session will record the SSO connection it came through.';

-- The SSO flow: section 1's flow (state, nonce, PKCE verifier, this browser, ten minutes, the
-- sign_in_flow attempt limit) under the provider name 'sso', recording the connection it runs
-- against so that the callback talks to that organization's issuer only.
create or replace function app_private.start_sso_sign_in_flow(connection_id uuid, browser_secret text, redirect_url text)
  returns table (state text, nonce text, code_verifier text)
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_flow record;
begin
  if not exists (select 1 from app_public.sso_connections c where c.id = start_sso_sign_in_flow.connection_id) then
    perform app_hidden.raise_error('SIGN_IN_FAILED', 'This SSO connection no longer exists.');
  end if;
  select f.* into v_flow from app_private.start_sign_in_flow('sso', start_sso_sign_in_flow.browser_secret,
    start_sso_sign_in_flow.redirect_url, null) f;
  update app_private.sign_in_flows f set sso_connection_id = start_sso_sign_in_flow.connection_id
  where f.state_hash = digest(v_flow.state, 'sha256');
  return query select v_flow.state, v_flow.nonce, v_flow.code_verifier;
end;
$$;
comment on function app_private.start_sso_sign_in_flow(uuid, text, text) is
  'Starts a sign-in flow against an organization''s SSO connection.';

-- After the connection's issuer answered and its ID token was checked: once per flow, the account
-- (sign_in_with_sso), then the one-time code whose session records the connection.
create or replace function app_private.complete_sso_sign_in_flow(
  flow_id uuid, issuer text, subject text, email text, email_verified boolean, name text
) returns text
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_flow app_private.sign_in_flows;
  v_identity_id uuid;
begin
  update app_private.sign_in_flows f set completed_at = now()
  where f.id = complete_sso_sign_in_flow.flow_id and f.used_at is not null and f.completed_at is null
    and f.expires_at > now() and f.sso_connection_id is not null
  returning * into v_flow;
  if not found then
    perform app_hidden.raise_error('SIGN_IN_FLOW_INVALID', 'This sign-in expired or was already used; start again.');
  end if;
  v_identity_id := app_private.sign_in_with_sso(v_flow.sso_connection_id, complete_sso_sign_in_flow.issuer,
    complete_sso_sign_in_flow.subject, complete_sso_sign_in_flow.email, complete_sso_sign_in_flow.email_verified,
    complete_sso_sign_in_flow.name);
  return app_private.issue_sso_sign_in_code(v_identity_id, v_flow.sso_connection_id);
end;
$$;
comment on function app_private.complete_sso_sign_in_flow(uuid, text, text, text, boolean, text) is
  'Completes an SSO flow once: the account (JIT within the organization''s verified domains) and a one-time code.';
