-- Who may change an organization's SSO: its admins and owners, as the caller's organizations say
-- (so an admin of an organization that requires SSO must come through its connection too).
-- NOT_FOUND for an organization the caller cannot see, FORBIDDEN for a plain member.

create or replace function app_private.assert_sso_admin(organization_id uuid) returns void
  language plpgsql stable
  set search_path = pg_catalog, public
as $$
begin
  if organization_id is null or not organization_id = any (app_public.current_user_organization_ids()) then
    perform app_hidden.raise_error('NOT_FOUND', 'No such organization.');
  end if;
  if app_public.current_user_id() is null
     or not organization_id = any (app_public.current_user_organization_ids('admin')) then
    perform app_hidden.raise_error('FORBIDDEN', 'Only admins and owners can change the organization''s SSO.');
  end if;
end;
$$;
comment on function app_private.assert_sso_admin(uuid) is
  'NOT_FOUND unless the caller sees the organization, FORBIDDEN unless they are its admin or owner (a signed-in user, not an API key).';
