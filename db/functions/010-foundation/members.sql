-- Membership as a precondition: the caller (user or API key) must belong to the organization.

create or replace function app_private.assert_member(organization_id uuid) returns void
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
begin
  -- A signed-in user, or an organization API key (jwt.claims.api_key_id, see 240-api-keys):
  -- current_user_organization_ids() answers for either.
  if app_public.current_user_id() is null
     and nullif(current_setting('jwt.claims.api_key_id', true), '') is null then
    perform app_hidden.raise_error('NOT_AUTHENTICATED', 'Sign in first.');
  end if;
  if organization_id is null or not organization_id = any (app_public.current_user_organization_ids()) then
    perform app_hidden.raise_error('NOT_FOUND', 'No such organization.');
  end if;
end;
$$;
