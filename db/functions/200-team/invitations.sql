-- Invitations: who may invite whom, tokens, the email job, accepting, revoking, resending, expiry.

-- The common preamble of the admin-side mutations: a signed-in user (API keys manage no team),
-- who belongs to the organization (else NOT_FOUND, so ids of other tenants cannot be probed) and
-- is an admin or owner (else FORBIDDEN).
create or replace function app_private.assert_team_admin(organization_id uuid, action text) returns void
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
begin
  if app_public.current_user_id() is null then
    perform app_hidden.raise_error('NOT_AUTHENTICATED', 'Sign in as a user to ' || action || '.');
  end if;
  if assert_team_admin.organization_id is null
     or not assert_team_admin.organization_id = any (app_public.current_user_organization_ids()) then
    perform app_hidden.raise_error('NOT_FOUND', 'No such organization.');
  end if;
  if not assert_team_admin.organization_id = any (app_public.current_user_organization_ids('admin')) then
    perform app_hidden.raise_error('FORBIDDEN', 'Only admins and owners can ' || action || '.');
  end if;
end;
$$;

-- A fresh token for an invitation (replacing any previous one, which stops working).
create or replace function app_private.issue_invitation_token(organization_id uuid, invitation_id uuid) returns text
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_token text := 'tbinv_' || encode(gen_random_bytes(32), 'hex');
begin
  insert into app_private.invitation_tokens (organization_id, invitation_id, token_hash)
  values (issue_invitation_token.organization_id, issue_invitation_token.invitation_id, digest(v_token, 'sha256'))
  on conflict on constraint invitation_tokens_pkey do update set token_hash = excluded.token_hash;
  return v_token;
end;
$$;

-- A fresh token for the invitation's email (replacing the previous one): only the mailbox of the
-- invited address receives it, so accepting with it proves that address (accept_invitation).
-- The inviter never sees it; the worker's job payload carries it to the email.
create or replace function app_private.issue_invitation_mail_token(organization_id uuid, invitation_id uuid) returns text
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_token text := 'tbinv_' || encode(gen_random_bytes(32), 'hex');
begin
  update app_private.invitation_tokens t set mail_token_hash = digest(v_token, 'sha256')
  where t.organization_id = issue_invitation_mail_token.organization_id
    and t.invitation_id = issue_invitation_mail_token.invitation_id;
  return v_token;
end;
$$;

-- The email and the expiry, queued in the caller's transaction (a rollback drops them too).
-- job_key: a resend replaces the queued email and moves the expiry job to the new expires_at.
-- `token` is the inviter's token (kept in the signature; not mailed): the email gets a mail token.
create or replace function app_private.queue_invitation_jobs(invitation app_public.invitations, token text) returns void
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  -- Every email counts against the organization's sending limits (invitation-limits.sql).
  perform app_private.count_invitation_send(invitation.organization_id, invitation.email);
  perform graphile_worker.add_job(
    'send_invitation_email',
    json_build_object('organizationId', invitation.organization_id, 'invitationId', invitation.id,
      'token', app_private.issue_invitation_mail_token(invitation.organization_id, invitation.id)),
    job_key => 'invitation_email:' || invitation.id,
    max_attempts => 10
  );
  perform graphile_worker.add_job(
    'expire_invitations',
    json_build_object('organizationId', invitation.organization_id, 'invitationId', invitation.id),
    run_at => invitation.expires_at,
    job_key => 'invitation_expiry:' || invitation.id,
    max_attempts => 5
  );
end;
$$;

create or replace function app_public.invite_member(
  organization_id uuid,
  email text,
  role app_public.organization_role default 'member'
) returns app_public.invitation_with_token
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_email text := app_hidden.normalize_email(invite_member.email);
  v_role app_public.organization_role := coalesce(invite_member.role, 'member');
  v_invitation app_public.invitations;
  v_token text;
begin
  perform app_private.assert_team_admin(invite_member.organization_id, 'invite members');
  if v_role = 'owner' and not invite_member.organization_id = any (app_public.current_user_organization_ids('owner')) then
    perform app_hidden.raise_error('FORBIDDEN', 'Only owners can invite owners.');
  end if;
  if v_email is null or length(v_email) > 254 or v_email !~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$' then
    perform app_hidden.raise_error('INVALID_EMAIL', 'That is not a valid email address.');
  end if;

  -- Locks the counter row: every invite and accept of this organization queues here, so the
  -- checks below see each other's results.
  perform app_private.assert_seat_available(invite_member.organization_id, 1);

  if exists (
    select 1 from app_public.organization_members m
    join app_public.users u on u.id = m.user_id
    where m.organization_id = invite_member.organization_id and u.email = v_email::citext
  ) then
    perform app_hidden.raise_error('ALREADY_MEMBER', 'That person is already a member of the organization.');
  end if;

  -- A pending invitation past its time no longer blocks a new one (the expiry job may not have
  -- run yet).
  update app_public.invitations i set status = 'expired'
  where i.organization_id = invite_member.organization_id and i.email = v_email::citext
    and i.status = 'pending' and i.expires_at <= now();

  begin
    insert into app_public.invitations (organization_id, email, role, invited_by)
    values (invite_member.organization_id, v_email, v_role, app_public.current_user_id())
    returning * into v_invitation;
  exception when unique_violation then
    perform app_hidden.raise_error('INVITATION_ALREADY_PENDING',
      'That email already has a pending invitation; resend or revoke it.');
  end;

  v_token := app_private.issue_invitation_token(v_invitation.organization_id, v_invitation.id);
  perform app_private.queue_invitation_jobs(v_invitation, v_token);
  perform app_private.record_audit_event(v_invitation.organization_id, 'invitation.created', 'invitation',
    v_invitation.id, jsonb_build_object('email', v_invitation.email, 'role', v_invitation.role));
  return (v_invitation, v_token)::app_public.invitation_with_token;
end;
$$;
comment on function app_public.invite_member(uuid, text, app_public.organization_role) is
  E'@flattenPayload\nInvites an email address (admins and owners; only owners invite owners). The invitation holds a seat until it is accepted, revoked or expires (SEAT_LIMIT_REACHED). An email with the token is queued.';

create or replace function app_public.accept_invitation(token text) returns app_public.organization_members
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid := app_public.current_user_id();
  v_ref app_private.invitation_tokens;
  v_invitation app_public.invitations;
  v_member app_public.organization_members;
  v_proves_address boolean;
begin
  if v_user_id is null then
    perform app_hidden.raise_error('NOT_AUTHENTICATED', 'Sign in to accept an invitation.');
  end if;
  -- Either token of the invitation: the inviter's (from inviteMember/resendInvitation) or the
  -- mailed one. Only the mailed one arrived at the invited address and so proves it (as a reset
  -- link does): the account is then verified below. With the inviter's token a verified address
  -- is still needed (VERIFIED_EMAIL_REQUIRED_FOR): an inviter who registered someone else's
  -- address must not get it verified by inviting it.
  select * into v_ref from app_private.invitation_tokens t
  where t.token_hash = digest(coalesce(accept_invitation.token, ''), 'sha256')
     or t.mail_token_hash = digest(coalesce(accept_invitation.token, ''), 'sha256');
  if not found then
    perform app_hidden.raise_error('INVITATION_INVALID', 'This invitation is not valid.');
  end if;
  v_proves_address := v_ref.mail_token_hash is not distinct from digest(coalesce(accept_invitation.token, ''), 'sha256');
  if not v_proves_address then
    perform app_hidden.require_verified_email('invitations');
  end if;

  -- Same lock order as invite_member (counter row, then the invitation): no deadlocks, and
  -- concurrent accepts queue on the seat count.
  perform 1 from app_public.usage_counters c where c.organization_id = v_ref.organization_id for update;
  select * into v_invitation from app_public.invitations i
  where i.organization_id = v_ref.organization_id and i.id = v_ref.invitation_id
  for update;
  -- Revoked or accepted in the meantime (the token row is gone after either), or an organization
  -- that was deleted: the same answer as an unknown token.
  if not found or v_invitation.status in ('revoked', 'accepted')
     or not exists (select 1 from app_private.invitation_tokens t
                    where t.organization_id = v_ref.organization_id and t.invitation_id = v_ref.invitation_id
                      and t.token_hash = v_ref.token_hash
                      and t.mail_token_hash is not distinct from v_ref.mail_token_hash)
     or exists (select 1 from app_public.organizations o
                where o.id = v_invitation.organization_id and o.deleted_at is not null) then
    perform app_hidden.raise_error('INVITATION_INVALID', 'This invitation is not valid.');
  end if;
  if v_invitation.status = 'expired' or v_invitation.expires_at <= now() then
    perform app_hidden.raise_error('INVITATION_EXPIRED', 'This invitation has expired; ask for a new one.');
  end if;
  if not exists (select 1 from app_public.users u where u.id = v_user_id and u.email = v_invitation.email) then
    perform app_hidden.raise_error('INVITATION_EMAIL_MISMATCH',
      'This invitation was sent to a different email address; sign in with that one.');
  end if;
  -- The mailed token proves the address: the account is verified (if it was not yet), as
  -- verify_email would.
  if v_proves_address then
    update app_public.users u set email_verified_at = coalesce(u.email_verified_at, now())
    where u.id = v_user_id and u.email_verified_at is null;
  end if;
  if exists (select 1 from app_public.organization_members m
             where m.organization_id = v_invitation.organization_id and m.user_id = v_user_id) then
    perform app_hidden.raise_error('ALREADY_MEMBER', 'You are already a member of this organization.');
  end if;

  update app_public.invitations i
  set status = 'accepted', accepted_by = v_user_id, accepted_at = now()
  where i.organization_id = v_invitation.organization_id and i.id = v_invitation.id;
  delete from app_private.invitation_tokens t
  where t.organization_id = v_invitation.organization_id and t.invitation_id = v_invitation.id;
  perform graphile_worker.remove_job('invitation_expiry:' || v_invitation.id);

  -- The member insert checks the seat limit (trigger from 100-plans-and-counters.sql); for this
  -- one insert pending invitations do not count (see organization_reserved_seats).
  perform set_config('tenantbase.seat_check', 'members_only', true);
  insert into app_public.organization_members (organization_id, user_id, role, invited_by)
  values (v_invitation.organization_id, v_user_id, v_invitation.role, v_invitation.invited_by)
  returning * into v_member;
  perform set_config('tenantbase.seat_check', '', true);

  perform app_private.record_audit_event(v_invitation.organization_id, 'invitation.accepted', 'invitation',
    v_invitation.id, jsonb_build_object('email', v_invitation.email, 'role', v_invitation.role, 'user_id', v_user_id));
  return v_member;
end;
$$;
comment on function app_public.accept_invitation(text) is
  E'@resultFieldName membership\nJoins the organization with the invitation''s role. The signed-in user''s email must be the invited one (INVITATION_EMAIL_MISMATCH otherwise); with the token from the invitation email (which only that mailbox receives) this proves the address, so an account not yet verified becomes verified and needs no separate verification; with the token returned to the inviter a verified address is needed (EMAIL_NOT_VERIFIED). Takes a seat (SEAT_LIMIT_REACHED).';

create or replace function app_public.revoke_invitation(id uuid) returns app_public.invitations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_invitation app_public.invitations;
begin
  select * into v_invitation from app_public.invitations i where i.id = revoke_invitation.id;
  if not found or not v_invitation.organization_id = any (app_public.current_user_organization_ids()) then
    perform app_hidden.raise_error('NOT_FOUND', 'No such invitation.');
  end if;
  perform app_private.assert_team_admin(v_invitation.organization_id, 'revoke invitations');
  perform 1 from app_public.usage_counters c where c.organization_id = v_invitation.organization_id for update;
  select * into v_invitation from app_public.invitations i
  where i.organization_id = v_invitation.organization_id and i.id = v_invitation.id
  for update;
  if v_invitation.status not in ('pending', 'expired') then
    perform app_hidden.raise_error('INVITATION_NOT_PENDING', format('This invitation is already %s.', v_invitation.status));
  end if;
  update app_public.invitations i set status = 'revoked'
  where i.organization_id = v_invitation.organization_id and i.id = v_invitation.id
  returning * into v_invitation;
  delete from app_private.invitation_tokens t
  where t.organization_id = v_invitation.organization_id and t.invitation_id = v_invitation.id;
  perform graphile_worker.remove_job('invitation_email:' || v_invitation.id);
  perform graphile_worker.remove_job('invitation_expiry:' || v_invitation.id);
  perform app_private.record_audit_event(v_invitation.organization_id, 'invitation.revoked', 'invitation',
    v_invitation.id, jsonb_build_object('email', v_invitation.email));
  return v_invitation;
end;
$$;
comment on function app_public.revoke_invitation(uuid) is
  E'@resultFieldName invitation\nRevokes a pending (or expired) invitation: its token stops working at once and its seat is free.';

create or replace function app_public.resend_invitation(id uuid) returns app_public.invitation_with_token
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_invitation app_public.invitations;
  v_token text;
begin
  select * into v_invitation from app_public.invitations i where i.id = resend_invitation.id;
  if not found or not v_invitation.organization_id = any (app_public.current_user_organization_ids()) then
    perform app_hidden.raise_error('NOT_FOUND', 'No such invitation.');
  end if;
  perform app_private.assert_team_admin(v_invitation.organization_id, 'resend invitations');
  if v_invitation.role = 'owner' and not v_invitation.organization_id = any (app_public.current_user_organization_ids('owner')) then
    perform app_hidden.raise_error('FORBIDDEN', 'Only owners can resend an invitation to become owner.');
  end if;
  perform 1 from app_public.usage_counters c where c.organization_id = v_invitation.organization_id for update;
  select * into v_invitation from app_public.invitations i
  where i.organization_id = v_invitation.organization_id and i.id = v_invitation.id
  for update;
  if v_invitation.status = 'pending' and v_invitation.expires_at <= now() then
    -- past its time, not yet swept: treat as expired (it holds no seat any more)
    update app_public.invitations i set status = 'expired'
    where i.organization_id = v_invitation.organization_id and i.id = v_invitation.id
    returning * into v_invitation;
  end if;
  if v_invitation.status not in ('pending', 'expired') then
    perform app_hidden.raise_error('INVITATION_NOT_PENDING', format('This invitation is already %s.', v_invitation.status));
  end if;
  if v_invitation.status = 'expired' then
    -- it becomes pending again, so it needs a seat again
    perform app_private.assert_seat_available(v_invitation.organization_id, 1);
  end if;
  begin
    update app_public.invitations i
    set status = 'pending', expires_at = now() + interval '7 days'
    where i.organization_id = v_invitation.organization_id and i.id = v_invitation.id
    returning * into v_invitation;
  exception when unique_violation then
    perform app_hidden.raise_error('INVITATION_ALREADY_PENDING',
      'That email already has a newer pending invitation.');
  end;
  v_token := app_private.issue_invitation_token(v_invitation.organization_id, v_invitation.id);
  perform app_private.queue_invitation_jobs(v_invitation, v_token);
  perform app_private.record_audit_event(v_invitation.organization_id, 'invitation.resent', 'invitation',
    v_invitation.id, jsonb_build_object('email', v_invitation.email));
  return (v_invitation, v_token)::app_public.invitation_with_token;
end;
$$;
comment on function app_public.resend_invitation(uuid) is
  E'@flattenPayload\nIssues a new token and a new expiry (7 days) and emails it again; the old token stops working.';

-- Invitations addressed to the signed-in user (to show "you have been invited" after sign-up).
-- The token is still needed to accept: this shows that they exist, not how to take them.
create or replace function app_public.my_pending_invitations() returns setof app_public.invitations
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
begin
  -- by default only a proven address sees what was sent to it (020-accounts/email-verification.sql)
  perform app_hidden.require_verified_email('invitations');
  return query
  select i.* from app_public.invitations i
  join app_public.users u on u.email = i.email
  join app_public.organizations o on o.id = i.organization_id and o.deleted_at is null
  where u.id = app_public.current_user_id()
    and i.status = 'pending' and i.expires_at > now()
  order by i.created_at desc;
end;
$$;
comment on function app_public.my_pending_invitations() is
  'Pending invitations sent to the signed-in user''s email address.';

-- What the invitation email needs, for the worker (as the owner role). No row when the token
-- is no longer the invitation's current one (resent since), or the invitation is no longer
-- pending: the job then sends nothing.
create or replace function app_private.invitation_email(invitation_id uuid, token text)
returns table (
  email text, role app_public.organization_role, organization_name text, organization_slug text,
  inviter_name text, expires_at timestamptz
)
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select i.email::text, i.role, o.name, o.slug, u.name, i.expires_at
  from app_public.invitations i
  join app_private.invitation_tokens t on t.organization_id = i.organization_id and t.invitation_id = i.id
  join app_public.organizations o on o.id = i.organization_id
  left join app_public.users u on u.id = i.invited_by
  where i.id = invitation_email.invitation_id
    -- the mail token (or, for a job queued before mail tokens existed, the inviter's)
    and (t.mail_token_hash = digest(coalesce(invitation_email.token, ''), 'sha256')
         or (t.mail_token_hash is null and t.token_hash = digest(coalesce(invitation_email.token, ''), 'sha256')))
    and i.status = 'pending'
    and i.expires_at > now()
    and o.deleted_at is null;
$$;

-- Marks pending invitations whose time is up as expired (the job at expires_at and the periodic
-- sweep). Their tokens stay, so a late accept answers INVITATION_EXPIRED rather than INVALID.
-- Expires pending invitations past expires_at: one, or (null) every organization's, each
-- organization in a subtransaction of its own so that one failure is rolled back alone and
-- reported (400-operations/batch-failures.sql).
create or replace function app_private.expire_invitations(invitation_id uuid default null) returns int
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_organization_id uuid;
  v_count int := 0;
  v_expired int;
  v_state text;
  v_message text;
begin
  for v_organization_id in
    select distinct i.organization_id from app_public.invitations i
    where i.status = 'pending' and i.expires_at <= now()
      and (expire_invitations.invitation_id is null or i.id = expire_invitations.invitation_id)
  loop
    begin
      with expired as (
        update app_public.invitations i set status = 'expired'
        where i.organization_id = v_organization_id
          and i.status = 'pending'
          and i.expires_at <= now()
          and (expire_invitations.invitation_id is null or i.id = expire_invitations.invitation_id)
        returning i.organization_id, i.id, i.email
      ), audited as (
        select app_private.record_audit_event(e.organization_id, 'invitation.expired', 'invitation', e.id,
          jsonb_build_object('email', e.email))
        from expired e
      )
      select count(*) into v_expired from audited;
      v_count := v_count + v_expired;
    exception when others then
      get stacked diagnostics v_state = returned_sqlstate, v_message = message_text;
      perform app_private.record_organization_failure('expire_invitations', v_organization_id, v_state, v_message);
    end;
  end loop;
  return v_count;
end;
$$;
comment on function app_private.expire_invitations(uuid) is
  'Expires pending invitations past expires_at (one, or all when null); returns how many.';
