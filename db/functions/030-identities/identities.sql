-- Identities at sign-in providers (OpenID Connect issuers, GitHub), keyed by (issuer, subject):
-- what a signed-in user sees of them (myIdentities) and removes (unlinkIdentity), and the rule that
-- nobody removes their last way to sign in. How identities are made and linked:
-- identity-linking.sql. The server's provider code: server/identity/.

create or replace trigger _100_audit_columns before insert or update on app_private.identities
  for each row execute function app_private.tg_audit_columns();

-- Ways the user can sign in: a password, and each linked identity.
create or replace function app_private.sign_in_method_count(user_id uuid) returns int
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
begin
  return (select count(*) from app_private.user_secrets s where s.user_id = sign_in_method_count.user_id)
       + (select count(*) from app_private.identities i where i.user_id = sign_in_method_count.user_id);
end;
$$;

create or replace function app_public.my_identities() returns setof app_public.user_identity
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
begin
  return query
  select i.id, i.provider, i.email::text, i.email_verified, i.created_at, i.last_used_at
  from app_private.identities i
  where i.user_id = app_public.current_user_id()
  order by i.created_at, i.id
  limit 100;
end;
$$;
comment on function app_public.my_identities() is
  E'@behavior -connection +list\n@listSuffix omit\nThe sign-in providers linked to your account, oldest first.';

-- Unlinking also ends the sessions that identity made: whoever holds them signed in as it.
create or replace function app_public.unlink_identity(id uuid) returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid := app_public.current_user_id();
begin
  if v_user_id is null then
    perform app_hidden.raise_error('NOT_AUTHENTICATED', 'Sign in first.');
  end if;
  -- serialises concurrent unlinks of one user's identities (two at once must not leave none)
  perform 1 from app_public.users u where u.id = v_user_id for update;
  if not exists (select 1 from app_private.identities i where i.id = unlink_identity.id and i.user_id = v_user_id) then
    perform app_hidden.raise_error('NOT_FOUND', 'No such linked provider.');
  end if;
  if app_private.sign_in_method_count(v_user_id) <= 1 then
    perform app_hidden.raise_error('LAST_SIGN_IN_METHOD',
      'This is your only way to sign in: set a password or link another provider first.');
  end if;
  update app_private.sessions s set revoked_at = now()
  where s.identity_id = unlink_identity.id and s.revoked_at is null;
  delete from app_private.identities i where i.id = unlink_identity.id;
  return true;
end;
$$;
comment on function app_public.unlink_identity(uuid) is
  E'@resultFieldName success\nRemoves a linked sign-in provider and ends the sessions it made; LAST_SIGN_IN_METHOD if it is your only way to sign in.';

-- A deleted account keeps no identity: the person can sign in again with the same provider
-- account later and gets a new account, and nothing of the old one is reachable through it.
create or replace function app_private.tg_users_forget_identities() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  delete from app_private.sign_in_codes c where c.user_id = new.id;
  delete from app_private.sign_in_flows f where f.link_user_id = new.id;
  delete from app_private.identities i where i.user_id = new.id;
  return null;
end;
$$;

create or replace trigger _210_forget_identities after update of deleted_at on app_public.users
  for each row when (new.deleted_at is not null and old.deleted_at is null)
  execute function app_private.tg_users_forget_identities();
