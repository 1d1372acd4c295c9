-- Email domains an organization claims for SSO. An admin adds one (public mail domains refused:
-- nobody owns gmail.com's people), publishes its token in a DNS TXT record, and the server checks
-- DNS and hands the records it found to confirm_sso_domain. A domain is verified by one
-- organization at most: adding or verifying a domain another organization verified is
-- SSO_DOMAIN_TAKEN (the partial unique index is the backstop for a race).

create or replace trigger _100_audit_columns before insert or update on app_public.sso_domains
  for each row execute function app_private.tg_audit_columns();

-- Mail providers where anyone can get an address: never an organization's domain.
create or replace function app_private.is_public_email_domain(domain text) returns boolean
  language sql immutable strict parallel safe
as $$
  select lower(domain) = any (array[
    'gmail.com', 'googlemail.com', 'outlook.com', 'hotmail.com', 'hotmail.co.uk', 'live.com', 'msn.com',
    'yahoo.com', 'yahoo.co.uk', 'yahoo.fr', 'ymail.com', 'aol.com', 'icloud.com', 'me.com', 'mac.com',
    'proton.me', 'protonmail.com', 'pm.me', 'gmx.com', 'gmx.de', 'gmx.net', 'web.de', 'mail.com',
    'mail.ru', 'yandex.com', 'yandex.ru', 'zoho.com', 'qq.com', '163.com', '126.com', 'fastmail.com',
    'hey.com', 'tutanota.com', 'example.com'
  ]);
$$;
comment on function app_private.is_public_email_domain(text) is
  'A public mail provider''s domain (anyone can get an address there): refused as an SSO domain.';

-- The TXT record value that proves the domain (at _tenantbase.<domain> or the domain itself).
create or replace function app_public.sso_domains_verification_record(d app_public.sso_domains) returns text
  language sql stable strict
as $$
  select 'tenantbase-verification=' || d.verification_token;
$$;
comment on function app_public.sso_domains_verification_record(app_public.sso_domains) is
  'The DNS TXT record to publish at _tenantbase.<domain> (or at the domain) to verify it.';

create or replace function app_public.add_sso_domain(organization_id uuid, domain text) returns app_public.sso_domains
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_domain text := rtrim(lower(btrim(left(coalesce(add_sso_domain.domain, ''), 300))), '.');
  v_row app_public.sso_domains;
begin
  perform app_private.assert_sso_admin(add_sso_domain.organization_id);
  if length(v_domain) > 253 or v_domain !~ '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$' then
    perform app_hidden.raise_error('INVALID_INPUT', 'That is not a domain name (e.g. example.org).');
  end if;
  if app_private.is_public_email_domain(v_domain) then
    perform app_hidden.raise_error('PUBLIC_EMAIL_DOMAIN', 'A public mail domain cannot be an organization''s SSO domain.');
  end if;
  if exists (select 1 from app_public.sso_domains d
             where d.domain = v_domain and d.verified_at is not null and d.organization_id <> add_sso_domain.organization_id) then
    perform app_hidden.raise_error('SSO_DOMAIN_TAKEN', 'Another organization has verified this domain.');
  end if;
  select d.* into v_row from app_public.sso_domains d
  where d.organization_id = add_sso_domain.organization_id and d.domain = v_domain;
  if found then
    return v_row;
  end if;
  if (select count(*) from app_public.sso_domains d where d.organization_id = add_sso_domain.organization_id) >= 20 then
    perform app_hidden.raise_error('SSO_DOMAIN_LIMIT_REACHED', 'An organization can claim at most 20 domains.');
  end if;
  insert into app_public.sso_domains (organization_id, domain) values (add_sso_domain.organization_id, v_domain)
  returning * into v_row;
  perform app_private.record_audit_event(v_row.organization_id, 'sso.domain_added', 'sso_domain', v_row.id,
    jsonb_build_object('domain', v_domain));
  return v_row;
end;
$$;
comment on function app_public.add_sso_domain(uuid, text) is
  E'@resultFieldName ssoDomain\nClaims an email domain for the organization''s SSO (admins); verify it with verifySsoDomain after publishing its TXT record.';

-- Called by the server's verifySsoDomain with the TXT records DNS answered (never by clients:
-- app_hidden is not in the API). Checks the caller may, and that one record is the domain's token.
create or replace function app_hidden.confirm_sso_domain(id uuid, txt_records text[]) returns app_public.sso_domains
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_row app_public.sso_domains;
begin
  select d.* into v_row from app_public.sso_domains d where d.id = confirm_sso_domain.id;
  if not found or not v_row.organization_id = any (app_public.current_user_organization_ids()) then
    perform app_hidden.raise_error('NOT_FOUND', 'No such domain.');
  end if;
  perform app_private.assert_sso_admin(v_row.organization_id);
  if v_row.verified_at is not null then
    return v_row;
  end if;
  if exists (select 1 from app_public.sso_domains d where d.domain = v_row.domain and d.verified_at is not null) then
    perform app_hidden.raise_error('SSO_DOMAIN_TAKEN', 'Another organization has verified this domain.');
  end if;
  if not ('tenantbase-verification=' || v_row.verification_token) = any (coalesce(confirm_sso_domain.txt_records[1:50], '{}')) then
    perform app_hidden.raise_error('SSO_DOMAIN_NOT_VERIFIED',
      'The domain''s DNS has no TXT record with its verification token yet (DNS changes can take a while).');
  end if;
  begin
    update app_public.sso_domains d set verified_at = now() where d.organization_id = v_row.organization_id and d.id = v_row.id
    returning * into v_row;
  exception when unique_violation then
    perform app_hidden.raise_error('SSO_DOMAIN_TAKEN', 'Another organization has verified this domain.');
  end;
  perform app_private.record_audit_event(v_row.organization_id, 'sso.domain_verified', 'sso_domain', v_row.id,
    jsonb_build_object('domain', v_row.domain));
  return v_row;
end;
$$;
comment on function app_hidden.confirm_sso_domain(uuid, text[]) is
  'Marks a domain verified when one of the TXT records the server found holds its token.';

create or replace function app_public.remove_sso_domain(id uuid) returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_row app_public.sso_domains;
begin
  select d.* into v_row from app_public.sso_domains d where d.id = remove_sso_domain.id;
  if not found or not v_row.organization_id = any (app_public.current_user_organization_ids()) then
    perform app_hidden.raise_error('NOT_FOUND', 'No such domain.');
  end if;
  perform app_private.assert_sso_admin(v_row.organization_id);
  delete from app_public.sso_domains d where d.organization_id = v_row.organization_id and d.id = v_row.id;
  perform app_private.record_audit_event(v_row.organization_id, 'sso.domain_removed', 'sso_domain', v_row.id,
    jsonb_build_object('domain', v_row.domain));
  return true;
end;
$$;
comment on function app_public.remove_sso_domain(uuid) is
  E'@resultFieldName success\nRemoves a domain the organization claimed (admins); people of that domain are no longer provisioned by SSO.';
