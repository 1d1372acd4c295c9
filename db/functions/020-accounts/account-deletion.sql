-- Deleting one's own account: deleteAccount(password). Refused with LAST_OWNER while the user is
-- the only owner of a live organization that has other members (transfer ownership first).
-- Organizations where the user is the only member are deleted with it (soft: purged after the
-- restore window like any deleted organization). The user leaves every other organization.
-- Personal data goes: the user row stays (audit entries, memberships of deleted organizations and
-- created_by columns point at its id) but is anonymised (name "Deleted user", an address under
-- deleted.invalid), and the password hash, sessions, tokens, settings and attempt counters are
-- removed; audit entries keep their history, with the address replaced wherever they name it.

create or replace function app_public.delete_account(password text) returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid := app_private.assert_current_password(delete_account.password);
  v_user app_public.users;
  v_org record;
  v_anonymous_email text;
begin
  perform app_hidden.assert_recent_second_factor(); -- step-up (050-mfa/step-up.sql)
  select * into v_user from app_public.users u where u.id = v_user_id for update;
  v_anonymous_email := 'deleted-' || v_user.id || '@deleted.invalid';

  for v_org in
    select o.id, o.name, m.role,
           exists (select 1 from app_public.organization_members x
                   where x.organization_id = o.id and x.user_id <> v_user_id) as has_others,
           exists (select 1 from app_public.organization_members x
                   where x.organization_id = o.id and x.user_id <> v_user_id and x.role = 'owner') as has_other_owner
    from app_public.organization_members m
    join app_public.organizations o on o.id = m.organization_id
    where m.user_id = v_user_id and o.deleted_at is null
    order by o.id
    for no key update of o
  loop
    if v_org.role = 'owner' and v_org.has_others and not v_org.has_other_owner then
      perform app_hidden.raise_error('LAST_OWNER',
        format('You are the only owner of %s, which has other members: make someone else owner first.', v_org.name));
    end if;
    if not v_org.has_others then
      update app_public.organizations o set deleted_at = now() where o.id = v_org.id;
      perform app_private.record_audit_event(v_org.id, 'organization.deleted', 'organization', v_org.id,
        jsonb_build_object('reason', 'account deleted'));
    else
      delete from app_public.organization_members m where m.organization_id = v_org.id and m.user_id = v_user_id;
    end if;
  end loop;

  -- the address disappears from audit details that name it (invitations to it, for example)
  perform set_config('tenantbase.allow_prune', 'on', true);
  update app_public.audit_events a set details = a.details || jsonb_build_object('email', v_anonymous_email)
  where a.details ->> 'email' = v_user.email::text;
  perform set_config('tenantbase.allow_prune', '', true);
  update app_public.invitations i set email = v_anonymous_email
  where i.accepted_by = v_user_id;

  delete from app_private.sessions s where s.user_id = v_user_id;
  delete from app_private.user_secrets s where s.user_id = v_user_id;
  delete from app_private.account_tokens t where t.user_id = v_user_id;
  delete from app_public.user_settings s where s.user_id = v_user_id;
  delete from app_private.attempt_counters c
  where c.scope = 'email' and c.subject = app_private.attempt_subject('email', v_user.email::text);
  update app_public.users u
  set email = v_anonymous_email, name = 'Deleted user', email_verified_at = null, deleted_at = now()
  where u.id = v_user_id;
  return true;
end;
$$;
comment on function app_public.delete_account(text) is
  E'@resultFieldName success\nDeletes your account (password required). LAST_OWNER while you are the only owner of an organization with other members. Organizations where you are alone are deleted too.';
