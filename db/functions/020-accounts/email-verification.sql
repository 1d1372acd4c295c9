-- Proving an email address: register mails a link (verify_email), verifyEmail(token) marks the
-- address verified (or, for an email-change token, applies the change: email-change.sql),
-- resendVerificationEmail mails a new link. What an unverified user may not do is one setting,
-- account_settings.verified_email_required_for (VERIFIED_EMAIL_REQUIRED_FOR, default
-- "invitations,api_keys"): 'invitations' (seeing and accepting invitations sent to the address),
-- 'api_keys' (creating organization API keys), 'organizations' (creating organizations).
-- Everything else is open to an unverified user.

-- currentUser { emailVerified }: your own status only (null for anyone else).
create or replace function app_public.users_email_verified(u app_public.users) returns boolean
  language sql stable
  set search_path = pg_catalog, public
as $$
  select case when u.id = app_public.current_user_id() then u.email_verified_at is not null end;
$$;
comment on function app_public.users_email_verified(app_public.users) is
  'Whether you proved your email address (only for yourself; null for other users).';

-- EMAIL_NOT_VERIFIED when the feature needs a verified address and the signed-in user has none.
-- Callers without a user (API keys) are left to the feature's own rules.
create or replace function app_hidden.require_verified_email(feature text) returns void
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid := app_public.current_user_id();
begin
  if v_user_id is null
     or not require_verified_email.feature = any ((app_private.account_settings()).verified_email_required_for) then
    return;
  end if;
  if not exists (select 1 from app_public.users u where u.id = v_user_id and u.email_verified_at is not null) then
    perform app_hidden.raise_error('EMAIL_NOT_VERIFIED',
      'Verify your email address first (see the link we sent, or resendVerificationEmail).');
  end if;
end;
$$;
comment on function app_hidden.require_verified_email(text) is
  'Raises EMAIL_NOT_VERIFIED when the feature (invitations, api_keys, organizations) needs a verified address the caller lacks.';

create or replace function app_public.verify_email(token text) returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_token app_private.account_tokens := app_private.use_account_token(array['verify_email', 'change_email'], verify_email.token);
  v_user app_public.users;
begin
  select * into v_user from app_public.users u where u.id = v_token.user_id for update;
  if v_token.purpose = 'change_email' then
    perform app_private.apply_email_change(v_token);
    return true;
  end if;
  -- a link for an address the account no longer has proves nothing about the current one
  if v_user.email <> v_token.email then
    perform app_hidden.raise_error('TOKEN_INVALID', 'This link is not valid.');
  end if;
  update app_public.users u set email_verified_at = coalesce(u.email_verified_at, now()) where u.id = v_user.id;
  return true;
end;
$$;
comment on function app_public.verify_email(text) is
  E'@resultFieldName success\nProves the email address with the token from the verification (or email-change) mail; works signed in or not.';

create or replace function app_public.resend_verification_email() returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user app_public.users;
begin
  select * into v_user from app_public.users u where u.id = app_public.current_user_id();
  if not found then
    perform app_hidden.raise_error('NOT_AUTHENTICATED', 'Sign in first.');
  end if;
  if v_user.email_verified_at is not null then
    perform app_hidden.raise_error('EMAIL_ALREADY_VERIFIED', 'Your email address is already verified.');
  end if;
  perform app_private.queue_account_email('verify_email', v_user.id);
  return true;
end;
$$;
comment on function app_public.resend_verification_email() is
  E'@resultFieldName success\nMails a new verification link (the previous one stops working).';
