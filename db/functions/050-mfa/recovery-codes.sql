-- Recovery codes: ten per account, shown once (regenerateMfaRecoveryCodes), kept as SHA-256,
-- each accepted once in place of a TOTP code or passkey (verifyMfa, stepUpMfa). Regenerating
-- replaces them all. They exist only while the account has a second factor.

create or replace trigger _100_audit_columns before insert or update on app_private.mfa_recovery_codes
  for each row execute function app_private.tg_audit_columns();

-- Codes are given as xxxxx-xxxxx; case, spaces and dashes do not matter.
create or replace function app_private.normalize_recovery_code(code text) returns text
  language sql immutable parallel safe
as $$
  select lower(regexp_replace(left(coalesce(code, ''), 64), '[\s-]', '', 'g'));
$$;

create or replace function app_private.new_recovery_codes(user_id uuid) returns setof text
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_code text;
begin
  delete from app_private.mfa_recovery_codes r where r.user_id = new_recovery_codes.user_id;
  for i in 1..10 loop
    -- 10 characters of [a-z2-7]: 50 bits each
    v_code := translate(lower(substr(encode(gen_random_bytes(8), 'base64'), 1, 10)), '+/01890', 'abcdefg');
    v_code := substr(v_code, 1, 5) || '-' || substr(v_code, 6, 5);
    insert into app_private.mfa_recovery_codes (user_id, code_hash)
    values (new_recovery_codes.user_id, digest(app_private.normalize_recovery_code(v_code), 'sha256'));
    return next v_code;
  end loop;
end;
$$;

create or replace function app_public.regenerate_mfa_recovery_codes() returns setof text
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid := app_public.current_user_id();
begin
  if v_user_id is null then
    perform app_hidden.raise_error('NOT_AUTHENTICATED', 'Sign in first.');
  end if;
  if not app_private.has_second_factor(v_user_id) then
    perform app_hidden.raise_error('MFA_NOT_ENROLLED', 'Add a second factor first.');
  end if;
  perform app_hidden.assert_recent_second_factor();
  return query select app_private.new_recovery_codes(v_user_id);
end;
$$;
comment on function app_public.regenerate_mfa_recovery_codes() is
  E'@resultFieldName recoveryCodes\nTen new recovery codes, shown this once; the previous ones stop working. Needs a second factor in the last 15 minutes.';

create or replace function app_public.mfa_recovery_codes_left() returns integer
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select count(*)::int from app_private.mfa_recovery_codes r
  where r.user_id = app_public.current_user_id() and r.used_at is null;
$$;
comment on function app_public.mfa_recovery_codes_left() is 'How many of your recovery codes are still unused.';
