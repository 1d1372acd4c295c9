-- Accounts: who may call what (the rules are in db/functions/020-accounts and
-- 010-foundation/sessions.sql). The tables these use are all in app_private: no app role reads
-- them; every access goes through a SECURITY DEFINER function below.

-- Anyone, signed in or not: the mail links and the attempt counter the server calls first.
grant execute on function
  app_hidden.client_address(),
  app_hidden.count_attempt(text, text),
  app_hidden.check_attempt(text, text),
  app_hidden.refuse_attempt(int),
  app_hidden.require_verified_email(text),
  app_public.forgot_password(text),
  app_public.reset_password(text, text),
  app_public.verify_email(text),
  app_public.users_email_verified(app_public.users)
to app_anonymous, app_user;

-- Signed-in users (anonymous callers may call them too, to be told NOT_AUTHENTICATED).
grant execute on function
  app_public.resend_verification_email(),
  app_public.change_password(text, text),
  app_public.change_email(text, text),
  app_public.delete_account(text),
  app_public.my_sessions(),
  app_public.revoke_session(uuid),
  app_public.revoke_other_sessions()
to app_anonymous, app_user;
