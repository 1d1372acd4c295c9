-- Changing the email address: changeEmail(newEmail, password) mails a link to the new address;
-- the change is applied only when that link is used (verifyEmail), and the old address then gets
-- a notice. Until then the account keeps its old address for everything.

create or replace function app_public.change_email(new_email text, password text) returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid := app_private.assert_current_password(change_email.password);
  v_email text := app_hidden.normalize_email(change_email.new_email);
begin
  perform app_hidden.assert_recent_second_factor(); -- step-up (050-mfa/step-up.sql)
  if v_email is null or length(v_email) > 254 or v_email !~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$' then
    perform app_hidden.raise_error('INVALID_EMAIL', 'That is not a valid email address.');
  end if;
  if exists (select 1 from app_public.users u where u.id = v_user_id and u.email = v_email) then
    perform app_hidden.raise_error('EMAIL_UNCHANGED', 'That is already your email address.');
  end if;
  if exists (select 1 from app_public.users u where u.email = v_email) then
    perform app_hidden.raise_error('EMAIL_TAKEN', 'An account with that email already exists.');
  end if;
  perform app_private.queue_account_email('change_email', v_user_id, jsonb_build_object('email', v_email));
  return true;
end;
$$;
comment on function app_public.change_email(text, text) is
  E'@resultFieldName success\nMails a confirmation link to the new address (password required: WRONG_PASSWORD); the address changes when the link is used (verifyEmail), and the old address is told.';

-- Applies a used change_email token (called by verify_email): the new address becomes the
-- account's, verified; the old one gets a notice; links for the old address stop working.
create or replace function app_private.apply_email_change(token app_private.account_tokens) returns void
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_old_email text;
begin
  select u.email into v_old_email from app_public.users u where u.id = token.user_id for update;
  begin
    update app_public.users u set email = token.email, email_verified_at = now() where u.id = token.user_id;
  exception when unique_violation then
    perform app_hidden.raise_error('EMAIL_TAKEN', 'An account with that email already exists.');
  end;
  perform app_private.revoke_account_tokens(token.user_id, array['verify_email', 'reset_password', 'change_email']);
  perform app_private.queue_account_email('email_changed', token.user_id,
    jsonb_build_object('oldEmail', v_old_email, 'newEmail', token.email::text));
end;
$$;
