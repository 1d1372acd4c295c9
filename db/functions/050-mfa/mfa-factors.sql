-- Listing and removing second factors. Removing one needs a second factor in the last 15
-- minutes; the last one cannot go while an organization of the user requires MFA
-- (LAST_MFA_FACTOR). With the last factor go the recovery codes.

create or replace function app_public.my_mfa_factors() returns setof app_public.mfa_factor
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select f.id, f.kind, f.name, f.created_at, f.last_used_at
  from app_private.mfa_factors f
  where f.user_id = app_public.current_user_id() and f.confirmed_at is not null
  order by f.created_at, f.id
  limit 100;
$$;
comment on function app_public.my_mfa_factors() is
  E'@behavior -connection +list\n@listSuffix omit\nYour second factors (TOTP apps, passkeys), oldest first.';

create or replace function app_public.remove_mfa_factor(id uuid) returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid := app_public.current_user_id();
begin
  if v_user_id is null then
    perform app_hidden.raise_error('NOT_AUTHENTICATED', 'Sign in first.');
  end if;
  perform app_hidden.assert_recent_second_factor();
  -- the account's factors, locked: two removals at once cannot both see another one left
  perform 1 from app_private.mfa_factors f where f.user_id = v_user_id for update;
  if not exists (select 1 from app_private.mfa_factors f
                 where f.id = remove_mfa_factor.id and f.user_id = v_user_id and f.confirmed_at is not null) then
    perform app_hidden.raise_error('NOT_FOUND', 'No such factor.');
  end if;
  if not exists (select 1 from app_private.mfa_factors f
                 where f.user_id = v_user_id and f.confirmed_at is not null and f.id <> remove_mfa_factor.id)
     and exists (select 1 from app_public.organization_members m
                 join app_public.organizations o on o.id = m.organization_id
                 where m.user_id = v_user_id and o.deleted_at is null and o.mfa_required_at is not null) then
    perform app_hidden.raise_error('LAST_MFA_FACTOR', 'An organization you belong to requires a second factor: add another before removing this one.');
  end if;
  delete from app_private.mfa_factors f where f.id = remove_mfa_factor.id and f.user_id = v_user_id;
  if not app_private.has_second_factor(v_user_id) then
    delete from app_private.mfa_recovery_codes r where r.user_id = v_user_id;
  end if;
  return true;
end;
$$;
comment on function app_public.remove_mfa_factor(uuid) is
  E'@resultFieldName success\nRemoves one of your second factors. Needs a second factor in the last 15 minutes; LAST_MFA_FACTOR while an organization of yours requires MFA and it is your last.';
