-- Identities: who may call what (the rules are in db/functions/030-identities). Its tables are all
-- in app_private: no app role reads them; the server's provider routes call the app_private
-- functions as the owner, and clients reach only these.

-- Anyone: the app exchanges its one-time code before it has a token.
grant execute on function app_public.exchange_sign_in_code(text) to app_anonymous, app_user;

-- Signed-in users (anonymous callers may call them too: an empty list, NOT_AUTHENTICATED).
grant execute on function
  app_public.my_identities(),
  app_public.unlink_identity(uuid)
to app_anonymous, app_user;
