-- Step-up: operations that hand over an account or an organization (changing email or
-- password, deleting the account or an organization, transferring ownership, creating an API
-- key, rotating a webhook secret) need, from a user who has a second factor, one given in this
-- session in the last 15 minutes (signing in with it, or stepUpMfa). Each of those functions
-- calls this first; an account without a factor is not asked.

create or replace function app_hidden.assert_recent_second_factor() returns void
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid := app_public.current_user_id();
begin
  if v_user_id is null or not app_private.has_second_factor(v_user_id) then
    return;
  end if;
  if not exists (select 1 from app_private.sessions s
                 where s.id = app_public.current_session_id() and s.user_id = v_user_id
                   and s.aal = 'aal2' and s.aal2_at > now() - interval '15 minutes') then
    perform app_hidden.raise_error('MFA_STEP_UP_REQUIRED', 'Confirm with your second factor first (stepUpMfa).');
  end if;
end;
$$;
comment on function app_hidden.assert_recent_second_factor() is
  'MFA_STEP_UP_REQUIRED unless the caller has no second factor or gave one in this session in the last 15 minutes.';
