-- Which account a provider's identity signs in to. Identities are keyed by (issuer, subject),
-- never by email; an email address only ever leads to an existing account when both sides proved
-- it:
--
-- | the identity | the provider's email | an account with that email | result |
-- | known | any | any | signs in to the identity's account |
-- | new, link flow (signed in) | any | any | linked to the signed-in account |
-- | new | not verified (or none) | any | PROVIDER_EMAIL_NOT_VERIFIED, nothing changes |
-- | new | verified | none | a new account, its address verified |
-- | new | verified | verified | linked to that account |
-- | new | verified | not verified | that account's password, sessions, pending mail tokens and unverified identities are removed, its address marked verified, then linked |
--
-- The last row: whoever registered an address they cannot read (an attacker pre-registering the
-- victim's address) must not keep a way in once the address's owner signs in with a provider.
-- A known identity of a deleted account is stale: removed, and the identity is treated as new.
-- A known identity linked to another account than the one linking it: IDENTITY_TAKEN.

create or replace function app_private.sign_in_with_identity(
  provider text, issuer text, subject text, email text, email_verified boolean, name text, link_user_id uuid
) returns uuid
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_email text := left(app_hidden.normalize_email(sign_in_with_identity.email), 320);
  v_verified boolean := coalesce(sign_in_with_identity.email_verified, false) and v_email is not null;
  v_identity app_private.identities;
  v_user app_public.users;
  v_name text;
  v_id uuid;
begin
  if coalesce(sign_in_with_identity.issuer, '') = '' or coalesce(sign_in_with_identity.subject, '') = ''
     or length(sign_in_with_identity.issuer) > 500 or length(sign_in_with_identity.subject) > 255 then
    perform app_hidden.raise_error('SIGN_IN_FAILED', 'The provider did not say who you are.');
  end if;
  -- serialises concurrent first sign-ins of one identity
  perform pg_advisory_xact_lock(hashtextextended('identity:' || sign_in_with_identity.issuer || ' ' || sign_in_with_identity.subject, 0));

  select i.* into v_identity from app_private.identities i
  where i.issuer = sign_in_with_identity.issuer and i.subject = sign_in_with_identity.subject;
  if found and exists (select 1 from app_public.users u where u.id = v_identity.user_id and u.deleted_at is not null) then
    delete from app_private.identities i where i.id = v_identity.id;
    v_identity := null;
  end if;

  if v_identity.id is not null then
    if sign_in_with_identity.link_user_id is not null and v_identity.user_id <> sign_in_with_identity.link_user_id then
      perform app_hidden.raise_error('IDENTITY_TAKEN', 'That provider account is linked to another account.');
    end if;
    update app_private.identities i
    set email = v_email, email_verified = v_verified, last_used_at = now()
    where i.id = v_identity.id;
    return v_identity.id;
  end if;

  if sign_in_with_identity.link_user_id is not null then
    if not exists (select 1 from app_public.users u where u.id = sign_in_with_identity.link_user_id and u.deleted_at is null) then
      perform app_hidden.raise_error('SIGN_IN_FAILED', 'That account no longer exists.');
    end if;
    insert into app_private.identities (user_id, provider, issuer, subject, email, email_verified)
    values (sign_in_with_identity.link_user_id, sign_in_with_identity.provider, sign_in_with_identity.issuer,
            sign_in_with_identity.subject, v_email, v_verified)
    returning id into v_id;
    return v_id;
  end if;

  if not v_verified then
    perform app_hidden.raise_error('PROVIDER_EMAIL_NOT_VERIFIED',
      'The provider did not confirm your email address; verify it there, or sign in another way.');
  end if;

  select u.* into v_user from app_public.users u where u.email = v_email and u.deleted_at is null for update;
  if not found then
    if length(v_email) > 254 or v_email !~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$' then
      perform app_hidden.raise_error('INVALID_EMAIL', 'The provider''s email address is not one we can use.');
    end if;
    -- the provider's name if it makes a display name (names.sql), else the address's local part
    begin
      v_name := app_hidden.clean_name(left(sign_in_with_identity.name, 100), 'Name');
    exception when sqlstate 'TB000' then
      v_name := left(split_part(v_email, '@', 1), 100);
    end;
    insert into app_public.users (email, name, email_verified_at)
    values (v_email, v_name, now())
    returning * into v_user;
  elsif v_user.email_verified_at is null then
    delete from app_private.user_secrets s where s.user_id = v_user.id;
    update app_private.sessions s set revoked_at = now() where s.user_id = v_user.id and s.revoked_at is null;
    update app_private.account_tokens t set revoked_at = now()
    where t.user_id = v_user.id and t.used_at is null and t.revoked_at is null;
    delete from app_private.identities i where i.user_id = v_user.id and not i.email_verified;
    update app_public.users u set email_verified_at = now() where u.id = v_user.id;
  end if;

  insert into app_private.identities (user_id, provider, issuer, subject, email, email_verified)
  values (v_user.id, sign_in_with_identity.provider, sign_in_with_identity.issuer, sign_in_with_identity.subject, v_email, true)
  returning id into v_id;
  return v_id;
end;
$$;
comment on function app_private.sign_in_with_identity(text, text, text, text, boolean, text, uuid) is
  'The account a provider identity signs in to (or is linked to); see the table at the top of identity-linking.sql.';
