-- Multi-factor sign-in: who may call what (the rules are in db/functions/050-mfa). Its tables are
-- all in app_private: no app role reads them; clients reach only these functions, and the
-- server's MFA mutations (server/mfa/plugin.ts) call the app_hidden ones as the caller.

-- Signed-in users (anonymous callers get an empty list or NOT_AUTHENTICATED).
grant execute on function
  app_public.my_mfa_factors(),
  app_public.remove_mfa_factor(uuid),
  app_public.regenerate_mfa_recovery_codes(),
  app_public.mfa_recovery_codes_left(),
  app_public.my_organizations_requiring_mfa()
to app_anonymous, app_user;

-- Admins of the organization (checked inside).
grant execute on function
  app_public.set_organization_mfa_required(uuid, boolean, integer),
  app_public.organization_members_without_mfa(uuid)
to app_user;

-- The server's MFA mutations, as the caller: verifyMfa comes before any session (anonymous).
grant execute on function
  app_hidden.mfa_code_attempt(uuid),
  app_hidden.accept_mfa_code(uuid, uuid, bigint, text)
to app_anonymous, app_user;
grant execute on function
  app_hidden.add_totp_factor(text, text),
  app_hidden.totp_confirmation_attempt(uuid),
  app_hidden.confirm_totp_factor(uuid, bigint)
to app_user;

-- Passkeys (server/mfa/passkeys.ts): sign-in ones before any session (anonymous).
grant execute on function
  app_hidden.start_passkey_challenge(text, text, text, text, uuid),
  app_hidden.take_passkey_challenge(uuid, text),
  app_hidden.passkey_credential(text),
  app_hidden.accept_passkey(uuid, uuid, bigint, boolean)
to app_anonymous, app_user;
grant execute on function
  app_hidden.add_passkey_factor(text, bytea, bigint, text[], text, boolean, text)
to app_user;
