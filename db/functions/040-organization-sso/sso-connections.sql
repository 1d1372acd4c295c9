-- The organization's OpenID Connect connection: issuer, client id and the client secret, which
-- the server encrypts (AES-256-GCM, SSO_SECRET_KEY from configuration) before it reaches SQL, so
-- neither the database, its backups nor its logs hold it in clear; no app role may read the
-- column, and no function gives it back to a client. The server decrypts it only to talk to the
-- issuer (sso_connection_for_email).

create or replace trigger _100_audit_columns before insert or update on app_public.sso_connections
  for each row execute function app_private.tg_audit_columns();

-- Called by the server's setSsoConnection with the secret already encrypted (app_hidden: not in
-- the API, so no client hands SQL a ciphertext of its own making).
create or replace function app_hidden.set_sso_connection(
  organization_id uuid, issuer text, client_id text, client_secret_encrypted bytea
) returns app_public.sso_connections
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_issuer text := btrim(coalesce(set_sso_connection.issuer, ''));
  v_client_id text := btrim(coalesce(set_sso_connection.client_id, ''));
  v_row app_public.sso_connections;
begin
  perform app_private.assert_sso_admin(set_sso_connection.organization_id);
  if length(v_issuer) not between 8 and 500 or v_issuer !~ '^https?://[^\s/?#]+(/[^\s?#]*)?$' then
    perform app_hidden.raise_error('INVALID_INPUT', 'The issuer must be the identity provider''s https URL.');
  end if;
  if length(v_client_id) not between 1 and 255 then
    perform app_hidden.raise_error('INVALID_INPUT', 'The client id must be 1 to 255 characters.');
  end if;
  if set_sso_connection.client_secret_encrypted is null
     or length(set_sso_connection.client_secret_encrypted) not between 29 and 2000 then
    perform app_hidden.raise_error('INVALID_INPUT', 'The client secret must be 1 to 1,000 characters.');
  end if;
  insert into app_public.sso_connections (organization_id, issuer, client_id, client_secret_encrypted)
  values (set_sso_connection.organization_id, v_issuer, v_client_id, set_sso_connection.client_secret_encrypted)
  on conflict on constraint sso_connections_organization_key do update
    set issuer = excluded.issuer, client_id = excluded.client_id, client_secret_encrypted = excluded.client_secret_encrypted
  returning * into v_row;
  -- never the secret, only that it was set
  perform app_private.record_audit_event(v_row.organization_id, 'sso.connection_set', 'sso_connection', v_row.id,
    jsonb_build_object('issuer', v_issuer, 'client_id', v_client_id));
  return v_row;
end;
$$;
comment on function app_hidden.set_sso_connection(uuid, text, text, bytea) is
  'Creates or replaces the organization''s OIDC connection (admins); the secret arrives encrypted by the server.';

-- The connection that signs in an address: the one of the organization that verified its domain.
-- For the server's /auth/sso/start (as the owner role: before anyone is signed in).
create or replace function app_private.sso_connection_for_email(email text)
  returns table (connection_id uuid, organization_id uuid, issuer text, client_id text, client_secret_encrypted bytea)
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select c.id, c.organization_id, c.issuer, c.client_id, c.client_secret_encrypted
  from app_public.sso_domains d
  join app_public.sso_connections c on c.organization_id = d.organization_id
  join app_public.organizations o on o.id = d.organization_id and o.deleted_at is null
  where d.verified_at is not null
    and d.domain = lower(split_part(left(coalesce(sso_connection_for_email.email, ''), 320), '@', 2))
    and position('@' in coalesce(sso_connection_for_email.email, '')) > 1;
$$;
comment on function app_private.sso_connection_for_email(text) is
  'The SSO connection of the organization that verified the address''s domain (none: no SSO for it).';

create or replace function app_private.sso_connection(id uuid)
  returns table (connection_id uuid, organization_id uuid, issuer text, client_id text, client_secret_encrypted bytea)
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select c.id, c.organization_id, c.issuer, c.client_id, c.client_secret_encrypted
  from app_public.sso_connections c where c.id = sso_connection.id;
$$;
comment on function app_private.sso_connection(uuid) is 'A connection by id, for the server''s SSO callback.';

create or replace function app_public.remove_sso_connection(organization_id uuid) returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_id uuid;
begin
  perform app_private.assert_sso_admin(remove_sso_connection.organization_id);
  delete from app_public.sso_connections c where c.organization_id = remove_sso_connection.organization_id
  returning c.id into v_id;
  if v_id is not null then
    -- nobody could come in through a connection that is gone
    update app_public.organizations o set sso_required = false where o.id = remove_sso_connection.organization_id;
    perform app_private.record_audit_event(remove_sso_connection.organization_id, 'sso.connection_removed', 'sso_connection', v_id, '{}');
  end if;
  return v_id is not null;
end;
$$;
comment on function app_public.remove_sso_connection(uuid) is
  E'@resultFieldName success\nRemoves the organization''s SSO connection (admins); SSO stops being required.';
