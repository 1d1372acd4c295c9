-- The organization policy "MFA required". An admin sets it (setOrganizationMfaRequired) with a
-- grace period for members to enrol; from organizations.mfa_required_at on, start_request()
-- (010-foundation/request.sql) leaves the organization out of the caller's organizations unless
-- the session is aal2, so RLS shows an aal1 session nothing of it. Why it is missing is answered
-- by myOrganizationsRequiringMfa. Admins list the members without a factor.

create or replace function app_public.set_organization_mfa_required(organization_id uuid, required boolean, grace_period_days integer default 7)
  returns app_public.organizations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_org app_public.organizations;
begin
  if app_public.current_user_id() is null then
    perform app_hidden.raise_error('NOT_AUTHENTICATED', 'Sign in first.');
  end if;
  if not (set_organization_mfa_required.organization_id = any (current_setting('tenantbase.admin_organization_ids')::uuid[])) then
    perform app_hidden.raise_error('FORBIDDEN', 'Only admins of the organization may change its MFA policy.');
  end if;
  if set_organization_mfa_required.grace_period_days is null or set_organization_mfa_required.grace_period_days not between 0 and 90 then
    perform app_hidden.raise_error('INVALID_INPUT', 'The grace period is 0 to 90 days.');
  end if;
  -- the admin would lock themselves out otherwise
  if set_organization_mfa_required.required and not app_private.has_second_factor(app_public.current_user_id()) then
    perform app_hidden.raise_error('MFA_NOT_ENROLLED', 'Add a second factor to your account before requiring one.');
  end if;
  update app_public.organizations o
  set mfa_required_at = case
        when not set_organization_mfa_required.required then null
        when o.mfa_required_at is not null then o.mfa_required_at
        else now() + make_interval(days => set_organization_mfa_required.grace_period_days) end
  where o.id = set_organization_mfa_required.organization_id and o.deleted_at is null
  returning * into v_org;
  if not found then
    perform app_hidden.raise_error('NOT_FOUND', 'No such organization.');
  end if;
  return v_org;
end;
$$;
comment on function app_public.set_organization_mfa_required(uuid, boolean, integer) is
  E'@resultFieldName organization\nAdmins: members must sign in with a second factor to see the organization, after a grace period (days, 0 to 90, default 7; kept if already required). MFA_NOT_ENROLLED when you have no factor yourself.';

-- The organizations the caller belongs to that this session may not see for want of a second
-- factor: what a client shows instead of an empty list (code MFA_REQUIRED in its docs).
create or replace function app_public.my_organizations_requiring_mfa() returns setof app_public.organization_mfa_gap
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select o.id, o.name, o.slug, o.mfa_required_at
  from app_public.organization_members m
  join app_public.organizations o on o.id = m.organization_id
  where m.user_id = app_public.current_user_id()
    and o.deleted_at is null
    and o.mfa_required_at <= now()
    and not exists (select 1 from app_private.sessions s
                    where s.id = app_public.current_session_id() and s.aal = 'aal2')
  order by o.name, o.id
  limit 1000;
$$;
comment on function app_public.my_organizations_requiring_mfa() is
  E'@behavior -connection +list\n@listSuffix omit\nYour organizations that require a second factor this session has not given (MFA_REQUIRED): sign in with it (verifyMfa) or step up (stepUpMfa) to see them.';

create or replace function app_public.organization_members_without_mfa(organization_id uuid) returns setof app_public.organization_members
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
begin
  if not (organization_members_without_mfa.organization_id = any (current_setting('tenantbase.admin_organization_ids')::uuid[])) then
    perform app_hidden.raise_error('FORBIDDEN', 'Only admins of the organization may see this.');
  end if;
  return query
  select m.* from app_public.organization_members m
  where m.organization_id = organization_members_without_mfa.organization_id
    and not app_private.has_second_factor(m.user_id)
  order by m.created_at, m.user_id
  limit 1000;
end;
$$;
comment on function app_public.organization_members_without_mfa(uuid) is
  E'@behavior -connection +list\n@listSuffix omit\nAdmins: the members of the organization who have no second factor yet.';
