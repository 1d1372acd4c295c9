--! Previous: sha1:f0efe16e721d76ff1d4c9842ef6aeb4ccd9aee32
--! Hash: sha1:be607fcfacc822c5bcd2a1bdcb36f2710d488871
--! Message: team lifecycle

--! split: 200-invitations.sql
-- Invitations: an admin or owner invites an email address into an organization with a role; the
-- invitee signs in (or registers later) and accepts with the one-time token from the email.
--
-- Seats: pending invitations hold a seat (members + pending <= the plan's max_seats), checked by
-- app_private.assert_seat_available with the organization's counter row locked, so concurrent
-- invites can never both take the last seat. Accepting turns the invitation's reserved seat into
-- a member seat.
--
-- Tokens: 256 random bits, returned once; only their SHA-256 lives in app_private (a fast hash
-- is enough for a random secret of that length: nothing to brute-force).

--------------------------------------------------------------------------------------------------
-- Tables
--------------------------------------------------------------------------------------------------

create type app_public.invitation_status as enum ('pending', 'accepted', 'revoked', 'expired');

create table app_public.invitations (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  email citext not null,
  role app_public.organization_role not null default 'member',
  status app_public.invitation_status not null default 'pending',
  invited_by uuid references app_public.users on delete set null,
  accepted_by uuid references app_public.users on delete set null,
  expires_at timestamptz not null default now() + interval '7 days',
  accepted_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id),
  constraint invitations_email_check check (length(email) <= 254 and email ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$'),
  constraint invitations_accepted_check check ((status = 'accepted') = (accepted_at is not null))
);
comment on table app_public.invitations is
  E'@behavior -insert -update -delete\nAn invitation of an email address into an organization. Created with inviteMember, accepted with acceptInvitation.';
comment on column app_public.invitations.email is 'Who may accept it (compared case-insensitively with the accepting user''s email).';
comment on column app_public.invitations.expires_at is 'After this the token answers INVITATION_EXPIRED (resendInvitation issues a new one).';

-- At most one pending invitation per (organization, email); accepted, revoked and expired ones
-- do not block a new invitation. Also serves the count of pending invitations for seats.
create unique index invitations_one_pending_idx on app_public.invitations (organization_id, email)
  where status = 'pending';
-- Mutations take the id alone; the key leads with the tenant, so look ups by id need their own index.
create index invitations_id_idx on app_public.invitations (id);
create index invitations_organization_created_idx on app_public.invitations (organization_id, created_at desc);
create index invitations_invited_by_idx on app_public.invitations (invited_by);
create index invitations_accepted_by_idx on app_public.invitations (accepted_by);
create index invitations_email_pending_idx on app_public.invitations (email) where status = 'pending';
-- The expiry sweep.
create index invitations_pending_expiry_idx on app_public.invitations (expires_at) where status = 'pending';

create trigger _100_audit_columns before insert or update on app_public.invitations
  for each row execute function app_private.tg_audit_columns();

-- The token's hash. Looked up by hash alone (the token is all the caller has), hence the global
-- unique index; the row goes away when the invitation is accepted or revoked, so a used or
-- revoked token is indistinguishable from one that never existed.
create table app_private.invitation_tokens (
  organization_id uuid not null,
  invitation_id uuid not null,
  token_hash bytea not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, invitation_id),
  foreign key (organization_id, invitation_id) references app_public.invitations on delete cascade,
  constraint invitation_tokens_token_hash_key unique (token_hash)
);
create trigger _100_audit_columns before insert or update on app_private.invitation_tokens
  for each row execute function app_private.tg_audit_columns();

--------------------------------------------------------------------------------------------------
-- Seats held by pending invitations (replaces the default from 100-plans-and-counters.sql)
--------------------------------------------------------------------------------------------------

-- Pending, unexpired invitations hold a seat. While an invitation is being accepted
-- (tenantbase.seat_check = 'members_only', set by accept_invitation for one insert) they do not:
-- the invitation converts its own reservation, and other people's reservations must not stop it
-- when the plan has room for one more member (e.g. after a downgrade, first come first served).
create or replace function app_private.organization_reserved_seats(organization_id uuid) returns int
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select case
    when current_setting('tenantbase.seat_check', true) = 'members_only' then 0
    else (
      select count(*)::int from app_public.invitations i
      where i.organization_id = organization_reserved_seats.organization_id
        and i.status = 'pending'
        and i.expires_at > now()
    )
  end;
$$;

--------------------------------------------------------------------------------------------------
-- Helpers
--------------------------------------------------------------------------------------------------

create type app_public.invitation_with_token as (
  invitation app_public.invitations,
  invitation_token text
);
comment on type app_public.invitation_with_token is
  'A new or resent invitation and its one-time token (shown only here; the database keeps its hash).';
comment on column app_public.invitation_with_token.invitation_token is
  'Pass to acceptInvitation. Shown once: only its hash is stored.';

-- A fresh token for an invitation (replacing any previous one, which stops working).
create function app_private.issue_invitation_token(organization_id uuid, invitation_id uuid) returns text
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

-- The email and the expiry, queued in the caller's transaction (a rollback drops them too).
-- job_key: a resend replaces the queued email and moves the expiry job to the new expires_at.
create function app_private.queue_invitation_jobs(invitation app_public.invitations, token text) returns void
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  perform graphile_worker.add_job(
    'send_invitation_email',
    json_build_object('organizationId', invitation.organization_id, 'invitationId', invitation.id, 'token', token),
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

-- The common preamble of the admin-side mutations: a signed-in user (API keys manage no team),
-- who belongs to the organization (else NOT_FOUND, so ids of other tenants cannot be probed) and
-- is an admin or owner (else FORBIDDEN).
create function app_private.assert_team_admin(organization_id uuid, action text) returns void
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

-- Marks pending invitations whose time is up as expired (the job at expires_at and the periodic
-- sweep). Their tokens stay, so a late accept answers INVITATION_EXPIRED rather than INVALID.
create function app_private.expire_invitations(invitation_id uuid default null) returns int
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_count int;
begin
  with expired as (
    update app_public.invitations i set status = 'expired'
    where i.status = 'pending'
      and i.expires_at <= now()
      and (expire_invitations.invitation_id is null or i.id = expire_invitations.invitation_id)
    returning i.organization_id, i.id, i.email
  ), audited as (
    select app_private.record_audit_event(e.organization_id, 'invitation.expired', 'invitation', e.id,
      jsonb_build_object('email', e.email))
    from expired e
  )
  select count(*) into v_count from audited;
  return v_count;
end;
$$;
comment on function app_private.expire_invitations(uuid) is
  'Expires pending invitations past expires_at (one, or all when null); returns how many.';

--------------------------------------------------------------------------------------------------
-- Mutations
--------------------------------------------------------------------------------------------------

create function app_public.invite_member(
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

create function app_public.accept_invitation(token text) returns app_public.organization_members
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid := app_public.current_user_id();
  v_ref app_private.invitation_tokens;
  v_invitation app_public.invitations;
  v_member app_public.organization_members;
begin
  if v_user_id is null then
    perform app_hidden.raise_error('NOT_AUTHENTICATED', 'Sign in to accept an invitation.');
  end if;
  select * into v_ref from app_private.invitation_tokens t
  where t.token_hash = digest(coalesce(accept_invitation.token, ''), 'sha256');
  if not found then
    perform app_hidden.raise_error('INVITATION_INVALID', 'This invitation is not valid.');
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
                      and t.token_hash = v_ref.token_hash)
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
  E'@resultFieldName membership\nJoins the organization with the invitation''s role. The signed-in user''s email must be the invited one. Takes a seat (SEAT_LIMIT_REACHED).';

create function app_public.revoke_invitation(id uuid) returns app_public.invitations
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

create function app_public.resend_invitation(id uuid) returns app_public.invitation_with_token
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
create function app_public.my_pending_invitations() returns setof app_public.invitations
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select i.* from app_public.invitations i
  join app_public.users u on u.email = i.email
  join app_public.organizations o on o.id = i.organization_id and o.deleted_at is null
  where u.id = app_public.current_user_id()
    and i.status = 'pending' and i.expires_at > now()
  order by i.created_at desc;
$$;
comment on function app_public.my_pending_invitations() is
  'Pending invitations sent to the signed-in user''s email address.';

-- What the invitation email needs, for the worker (as the owner role). No row when the token
-- is no longer the invitation's current one (resent since), or the invitation is no longer
-- pending: the job then sends nothing.
create function app_private.invitation_email(invitation_id uuid, token text)
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
    and t.token_hash = digest(coalesce(invitation_email.token, ''), 'sha256')
    and i.status = 'pending'
    and i.expires_at > now()
    and o.deleted_at is null;
$$;

--! split: 210-roles.sql
-- Roles and ownership: owner > admin > member.
--   * admins and owners remove members and change roles up to admin;
--   * only owners make owners, change an owner's role, remove an owner, transfer ownership;
--   * an organization always keeps at least one owner (LAST_OWNER), enforced by a trigger on
--     organization_members so that no path (these functions, jobs, future code) can break it.
-- Every change is written to the audit log by the foundation's member trigger, with created_by =
-- the signed-in user who made it.

-- Serializes every change of owners in one organization: the organization row is locked
-- (FOR NO KEY UPDATE: does not block inserts of rows that reference it), then owners are counted
-- with a fresh snapshot. Two owners demoting each other at once: the second waits for the first,
-- then counts one owner fewer and gets LAST_OWNER. On a cascade from deleting the organization
-- the row is already gone and there is nothing to protect.
create function app_private.tg_organization_members_keep_owner() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  if old.role <> 'owner' or (tg_op = 'UPDATE' and new.role = 'owner') then
    return coalesce(new, old);
  end if;
  perform 1 from app_public.organizations o where o.id = old.organization_id for no key update;
  if not found then
    return coalesce(new, old);
  end if;
  if not exists (
    select 1 from app_public.organization_members m
    where m.organization_id = old.organization_id and m.role = 'owner' and m.user_id <> old.user_id
  ) then
    perform app_hidden.raise_error('LAST_OWNER',
      'An organization needs at least one owner: make someone else owner first.');
  end if;
  return coalesce(new, old);
end;
$$;
create trigger _500_keep_owner before update of role or delete on app_public.organization_members
  for each row execute function app_private.tg_organization_members_keep_owner();

-- Locks the organization for a membership change and returns the caller's role in it (null when
-- not a member). Every function below takes this lock first, then checks rights, so the checks
-- see the result of any change that finished while it waited.
create function app_private.lock_organization_for_member_change(organization_id uuid)
returns app_public.organization_role
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_role app_public.organization_role;
begin
  if app_public.current_user_id() is null then
    perform app_hidden.raise_error('NOT_AUTHENTICATED', 'Sign in as a user to manage members.');
  end if;
  perform 1 from app_public.organizations o
  where o.id = lock_organization_for_member_change.organization_id and o.deleted_at is null
  for no key update;
  if not found then
    perform app_hidden.raise_error('NOT_FOUND', 'No such organization.');
  end if;
  select m.role into v_role from app_public.organization_members m
  where m.organization_id = lock_organization_for_member_change.organization_id
    and m.user_id = app_public.current_user_id();
  if v_role is null then
    perform app_hidden.raise_error('NOT_FOUND', 'No such organization.');
  end if;
  return v_role;
end;
$$;

create function app_public.change_member_role(
  organization_id uuid,
  user_id uuid,
  role app_public.organization_role
) returns app_public.organization_members
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_caller_role app_public.organization_role;
  v_member app_public.organization_members;
begin
  v_caller_role := app_private.lock_organization_for_member_change(change_member_role.organization_id);
  if v_caller_role < 'admin' then
    perform app_hidden.raise_error('FORBIDDEN', 'Only admins and owners can change roles.');
  end if;
  if change_member_role.role is null then
    perform app_hidden.raise_error('INVALID_ROLE', 'Give a role: member, admin or owner.');
  end if;
  select * into v_member from app_public.organization_members m
  where m.organization_id = change_member_role.organization_id and m.user_id = change_member_role.user_id
  for update;
  if not found then
    perform app_hidden.raise_error('NOT_FOUND', 'No such member.');
  end if;
  if (change_member_role.role = 'owner' or v_member.role = 'owner') and v_caller_role <> 'owner' then
    perform app_hidden.raise_error('FORBIDDEN', 'Only owners can make owners or change an owner''s role.');
  end if;
  if v_member.role = change_member_role.role then
    return v_member;
  end if;
  update app_public.organization_members m set role = change_member_role.role
  where m.organization_id = change_member_role.organization_id and m.user_id = change_member_role.user_id
  returning * into v_member;
  return v_member;
end;
$$;
comment on function app_public.change_member_role(uuid, uuid, app_public.organization_role) is
  E'@resultFieldName membership\nChanges a member''s role. Admins change roles up to admin; only owners make owners or change an owner''s role; the last owner cannot be demoted (LAST_OWNER).';

create function app_public.remove_member(organization_id uuid, user_id uuid) returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_caller_role app_public.organization_role;
  v_member app_public.organization_members;
begin
  v_caller_role := app_private.lock_organization_for_member_change(remove_member.organization_id);
  if v_caller_role < 'admin' then
    perform app_hidden.raise_error('FORBIDDEN', 'Only admins and owners can remove members.');
  end if;
  select * into v_member from app_public.organization_members m
  where m.organization_id = remove_member.organization_id and m.user_id = remove_member.user_id
  for update;
  if not found then
    perform app_hidden.raise_error('NOT_FOUND', 'No such member.');
  end if;
  if v_member.role = 'owner' and v_caller_role <> 'owner' then
    perform app_hidden.raise_error('FORBIDDEN', 'Only owners can remove an owner.');
  end if;
  delete from app_public.organization_members m
  where m.organization_id = remove_member.organization_id and m.user_id = remove_member.user_id;
  return true;
end;
$$;
comment on function app_public.remove_member(uuid, uuid) is
  E'@resultFieldName success\nRemoves a member (admins and owners; only owners remove owners; never the last owner: LAST_OWNER). Frees their seat.';

create function app_public.leave_organization(organization_id uuid) returns boolean
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  perform app_private.lock_organization_for_member_change(leave_organization.organization_id);
  delete from app_public.organization_members m
  where m.organization_id = leave_organization.organization_id and m.user_id = app_public.current_user_id();
  return true;
end;
$$;
comment on function app_public.leave_organization(uuid) is
  E'@resultFieldName success\nLeaves the organization (the last owner cannot: LAST_OWNER).';

create function app_public.transfer_ownership(organization_id uuid, user_id uuid) returns app_public.organization_members
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_caller_role app_public.organization_role;
  v_member app_public.organization_members;
begin
  v_caller_role := app_private.lock_organization_for_member_change(transfer_ownership.organization_id);
  if v_caller_role <> 'owner' then
    perform app_hidden.raise_error('FORBIDDEN', 'Only an owner can transfer ownership.');
  end if;
  if transfer_ownership.user_id = app_public.current_user_id() then
    perform app_hidden.raise_error('INVALID_TARGET', 'You are already an owner.');
  end if;
  select * into v_member from app_public.organization_members m
  where m.organization_id = transfer_ownership.organization_id and m.user_id = transfer_ownership.user_id
  for update;
  if not found then
    perform app_hidden.raise_error('NOT_FOUND', 'No such member: ownership goes to an existing member.');
  end if;
  update app_public.organization_members m set role = 'owner'
  where m.organization_id = transfer_ownership.organization_id and m.user_id = transfer_ownership.user_id
  returning * into v_member;
  update app_public.organization_members m set role = 'admin'
  where m.organization_id = transfer_ownership.organization_id and m.user_id = app_public.current_user_id();
  perform app_private.record_audit_event(transfer_ownership.organization_id, 'organization.ownership_transferred',
    'user', transfer_ownership.user_id, jsonb_build_object('from', app_public.current_user_id()));
  return v_member;
end;
$$;
comment on function app_public.transfer_ownership(uuid, uuid) is
  E'@resultFieldName membership\nMakes another member owner and the caller admin (owners only).';

--! split: 220-slugs.sql
-- Slugs: an organization may change its slug once; the old one keeps resolving through a
-- redirect row (organizationBySlug). Slugs are one namespace across all organizations: a new
-- slug may be neither a current slug nor an old one that still redirects, nor a reserved word.

alter table app_public.organizations add column slug_changed_at timestamptz;
comment on column app_public.organizations.slug_changed_at is
  'When the slug was changed (it can be changed once; the old slug keeps redirecting).';

-- Old slugs. The key leads with the tenant like every tenant table; the extra unique index on
-- slug alone is the global namespace (exactly like organizations.slug), needed to resolve a slug
-- to its organization.
create table app_public.organization_slug_redirects (
  organization_id uuid not null references app_public.organizations on delete cascade,
  slug text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, slug)
);
comment on table app_public.organization_slug_redirects is
  E'@behavior -insert -update -delete\nAn old slug of an organization; organizationBySlug still finds it.';
create unique index organization_slug_redirects_slug_key on app_public.organization_slug_redirects (slug);
comment on index app_public.organization_slug_redirects_slug_key is
  'global-unique: slugs are one namespace across organizations (like organizations.slug); on Citus this table would be a reference table.';
create trigger _100_audit_columns before insert or update on app_public.organization_slug_redirects
  for each row execute function app_private.tg_audit_columns();

create function app_hidden.is_reserved_slug(slug text) returns boolean
  language sql immutable parallel safe
as $$
  select slug = any (array[
    'about', 'account', 'accounts', 'admin', 'administrator', 'api', 'app', 'apps', 'assets', 'auth',
    'billing', 'blog', 'dashboard', 'docs', 'help', 'graphiql', 'graphql', 'healthz', 'invitations',
    'invite', 'login', 'logout', 'mail', 'metrics', 'new', 'null', 'oauth', 'orgs',
    'organization', 'organizations', 'readyz', 'register', 'root', 'settings', 'signin', 'signup',
    'static', 'status', 'support', 'system', 'tenantbase', 'undefined', 'webhooks', 'www'
  ]);
$$;
comment on function app_hidden.is_reserved_slug(text) is 'Words that route elsewhere and cannot be slugs.';

-- Slugs for new organizations also skip reserved words and slugs that still redirect (replaces
-- the version in 010-foundation-fixes.sql; same serialization by advisory lock).
create or replace function app_private.unique_slug(base text) returns text
  language plpgsql volatile
  set search_path = pg_catalog, public
as $$
declare
  v_base text := coalesce(nullif(app_hidden.slugify(base), ''), 'org');
  v_candidate text;
  v_n int := 1;
begin
  if length(v_base) < 3 then
    v_base := v_base || '-org';
  end if;
  perform pg_advisory_xact_lock(hashtext('tenantbase:slug:' || v_base));
  v_candidate := v_base;
  while app_hidden.is_reserved_slug(v_candidate)
     or exists (select 1 from app_public.organizations where slug = v_candidate)
     or exists (select 1 from app_public.organization_slug_redirects where slug = v_candidate) loop
    v_n := v_n + 1;
    v_candidate := v_base || '-' || v_n;
  end loop;
  return v_candidate;
end;
$$;

create function app_public.change_organization_slug(organization_id uuid, slug text) returns app_public.organizations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_slug text := lower(btrim(change_organization_slug.slug));
  v_org app_public.organizations;
begin
  perform app_private.assert_team_admin(change_organization_slug.organization_id, 'change the slug');
  if v_slug is null or length(v_slug) not between 3 and 48 or v_slug !~ '^[a-z0-9]+(-[a-z0-9]+)*$' then
    perform app_hidden.raise_error('INVALID_SLUG',
      'A slug is 3 to 48 characters: a-z, 0-9 and single hyphens, not at either end.');
  end if;
  if app_hidden.is_reserved_slug(v_slug) then
    perform app_hidden.raise_error('INVALID_SLUG', format('"%s" is reserved.', v_slug));
  end if;
  select * into v_org from app_public.organizations o
  where o.id = change_organization_slug.organization_id
  for no key update;
  if v_org.slug_changed_at is not null then
    perform app_hidden.raise_error('SLUG_ALREADY_CHANGED', 'The slug of an organization can be changed only once.');
  end if;
  -- Both the new slug and the one being vacated are claimed through the same advisory lock the
  -- slug generator takes, so a concurrent change or creation cannot slip between check and write.
  perform pg_advisory_xact_lock(hashtext('tenantbase:slug:' || v_slug));
  if v_slug = v_org.slug
     or exists (select 1 from app_public.organizations o where o.slug = v_slug)
     or exists (select 1 from app_public.organization_slug_redirects r where r.slug = v_slug) then
    perform app_hidden.raise_error('SLUG_TAKEN', format('The slug "%s" is taken.', v_slug));
  end if;
  begin
    insert into app_public.organization_slug_redirects (organization_id, slug) values (v_org.id, v_org.slug);
    update app_public.organizations o set slug = v_slug, slug_changed_at = now()
    where o.id = v_org.id
    returning * into v_org;
  exception when unique_violation then
    perform app_hidden.raise_error('SLUG_TAKEN', format('The slug "%s" is taken.', v_slug));
  end;
  perform app_private.record_audit_event(v_org.id, 'organization.slug_changed', 'organization', v_org.id,
    jsonb_build_object('from', (select r.slug from app_public.organization_slug_redirects r where r.organization_id = v_org.id), 'to', v_slug));
  return v_org;
end;
$$;
comment on function app_public.change_organization_slug(uuid, text) is
  E'@resultFieldName organization\nChanges the slug, once (SLUG_ALREADY_CHANGED after that); the old slug keeps resolving in organizationBySlug. Admins and owners.';

-- Current slug first, then redirects. Not SECURITY DEFINER: RLS decides whether the caller may
-- see the organization (a slug of someone else's organization answers null).
create function app_public.organization_by_slug(slug text) returns app_public.organizations
  language sql stable
  set search_path = pg_catalog, public
as $$
  select o.* from app_public.organizations o
  where o.slug = lower(btrim(organization_by_slug.slug))
  union all
  select o.* from app_public.organization_slug_redirects r
  join app_public.organizations o on o.id = r.organization_id
  where r.slug = lower(btrim(organization_by_slug.slug))
  limit 1;
$$;
comment on function app_public.organization_by_slug(text) is
  'The organization with this slug, or whose slug it was before it was changed.';

-- The generated organizationBySlug (from the unique constraint) would not follow redirects;
-- the function above takes its name.
comment on constraint organizations_slug_key on app_public.organizations is E'@behavior -single';

--! split: 230-settings.sql
-- Settings: typed JSONB validated in the database.
--
-- organization_settings: one row per organization (created with it), two JSONB documents:
--   branding: { logoUrl: https URL | null, primaryColor: "#rrggbb", customDomain: hostname | null }
--   features: { ssoEnabled: boolean, apiAccessEnabled: boolean, auditLogRetentionDays: 1..3650 }
-- user_settings: one row per user: locale, timezone (IANA, from pg_timezone_names), emailNotifications.
--
-- Writes go through updateOrganizationSettings / updateUserSettings, which take a JSON patch and
-- merge it into what is there; a BEFORE trigger validates the merged document on every write,
-- whatever path it takes. Unknown keys and wrong types raise INVALID_SETTINGS naming the path.
-- Reads are typed: computed columns return composite types, so the GraphQL schema spells out
-- every field and its type (see docs/readme/5-team.md).

create function app_private.settings_error(path text, message text) returns void
  language plpgsql volatile
as $$
begin
  perform app_hidden.raise_error('INVALID_SETTINGS', path || ': ' || message);
end;
$$;

-- Checks one document against a spec: { key: type } where type is one of
-- boolean | integer | string, with "?" suffix for nullable. Returns nothing; raises on the first
-- problem. Range and format rules are checked by the callers.
create function app_private.check_settings_shape(doc jsonb, path text, spec jsonb) returns void
  language plpgsql volatile
  set search_path = pg_catalog, public
as $$
declare
  v_key text;
  v_value jsonb;
  v_type text;
  v_nullable boolean;
begin
  if doc is null or jsonb_typeof(doc) <> 'object' then
    perform app_private.settings_error(path, 'must be an object');
  end if;
  for v_key, v_value in select * from jsonb_each(doc) loop
    v_type := spec ->> v_key;
    if v_type is null then
      perform app_private.settings_error(path || '.' || v_key, format('unknown setting (known: %s)',
        (select string_agg(k, ', ' order by k) from jsonb_object_keys(spec) k)));
    end if;
    v_nullable := v_type like '%?';
    v_type := rtrim(v_type, '?');
    if jsonb_typeof(v_value) = 'null' then
      if not v_nullable then
        perform app_private.settings_error(path || '.' || v_key, format('must be a %s, not null', v_type));
      end if;
    elsif v_type = 'boolean' and jsonb_typeof(v_value) <> 'boolean'
       or v_type = 'string' and jsonb_typeof(v_value) <> 'string'
       or v_type = 'integer' and (jsonb_typeof(v_value) <> 'number' or v_value::text !~ '^-?[0-9]+$') then
      perform app_private.settings_error(path || '.' || v_key,
        format('must be %s %s, got %s', case when v_type = 'integer' then 'an' else 'a' end, v_type, v_value::text));
    end if;
  end loop;
end;
$$;

--------------------------------------------------------------------------------------------------
-- Organization settings
--------------------------------------------------------------------------------------------------

create table app_public.organization_settings (
  organization_id uuid primary key references app_public.organizations on delete cascade,
  branding jsonb not null default '{"logoUrl": null, "primaryColor": "#4f46e5", "customDomain": null}',
  features jsonb not null default '{"ssoEnabled": false, "apiAccessEnabled": true, "auditLogRetentionDays": 30}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid
);
comment on table app_public.organization_settings is
  E'@behavior -insert -update -delete\nAn organization''s branding and feature settings (one row, created with the organization). Change with updateOrganizationSettings.';
-- The raw documents are not exposed: the typed computed columns below are.
comment on column app_public.organization_settings.branding is E'@behavior -*';
comment on column app_public.organization_settings.features is E'@behavior -*';
create trigger _100_audit_columns before insert or update on app_public.organization_settings
  for each row execute function app_private.tg_audit_columns();

create function app_private.tg_organization_settings_validate() returns trigger
  language plpgsql volatile
  set search_path = pg_catalog, public
as $$
declare
  v_value jsonb;
begin
  -- Keys left out keep their defaults.
  new.branding := '{"logoUrl": null, "primaryColor": "#4f46e5", "customDomain": null}'::jsonb || coalesce(new.branding, '{}');
  new.features := '{"ssoEnabled": false, "apiAccessEnabled": true, "auditLogRetentionDays": 30}'::jsonb || coalesce(new.features, '{}');
  perform app_private.check_settings_shape(new.branding, 'branding',
    '{"logoUrl": "string?", "primaryColor": "string", "customDomain": "string?"}');
  perform app_private.check_settings_shape(new.features, 'features',
    '{"ssoEnabled": "boolean", "apiAccessEnabled": "boolean", "auditLogRetentionDays": "integer"}');

  v_value := new.branding -> 'logoUrl';
  if jsonb_typeof(v_value) = 'string'
     and (length(v_value #>> '{}') > 2048 or v_value #>> '{}' !~ '^https://[^[:space:]/?#]+\.[^[:space:]/?#]+([/?#][^[:space:]]*)?$') then
    perform app_private.settings_error('branding.logoUrl', 'must be an https:// URL of at most 2048 characters');
  end if;
  v_value := new.branding -> 'primaryColor';
  if jsonb_typeof(v_value) = 'string' and v_value #>> '{}' !~ '^#[0-9a-fA-F]{6}$' then
    perform app_private.settings_error('branding.primaryColor', format('must be a colour like #1a2b3c, got %s', v_value));
  end if;
  v_value := new.branding -> 'customDomain';
  if jsonb_typeof(v_value) = 'string'
     and (length(v_value #>> '{}') > 253
          or lower(v_value #>> '{}') !~ '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$') then
    perform app_private.settings_error('branding.customDomain', format('must be a host name like app.example.com, got %s', v_value));
  end if;
  if (new.features ->> 'auditLogRetentionDays')::numeric not between 1 and 3650 then
    perform app_private.settings_error('features.auditLogRetentionDays',
      format('must be between 1 and 3650 days, got %s', new.features -> 'auditLogRetentionDays'));
  end if;
  return new;
end;
$$;
create trigger _010_validate before insert or update on app_public.organization_settings
  for each row execute function app_private.tg_organization_settings_validate();

create function app_private.tg_organization_settings_audit() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  if new.branding is distinct from old.branding or new.features is distinct from old.features then
    perform app_private.record_audit_event(new.organization_id, 'settings.changed', 'organization', new.organization_id,
      jsonb_build_object(
        'from', jsonb_build_object('branding', old.branding, 'features', old.features),
        'to', jsonb_build_object('branding', new.branding, 'features', new.features)));
  end if;
  return null;
end;
$$;
create trigger _900_audit after update on app_public.organization_settings
  for each row execute function app_private.tg_organization_settings_audit();

-- Created with the organization, in the same transaction.
create function app_private.tg_organizations_settings_row() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  insert into app_public.organization_settings (organization_id) values (new.id)
  on conflict (organization_id) do nothing;
  return null;
end;
$$;
create trigger _210_settings_row after insert on app_public.organizations
  for each row execute function app_private.tg_organizations_settings_row();
insert into app_public.organization_settings (organization_id)
select id from app_public.organizations on conflict do nothing;

-- The typed view of the documents. (primaryColor is never null: PostGraphile reads a composite
-- whose fields are all null as a null object, and branding should always be an object.)
create type app_public.organization_branding as (
  logo_url text,
  primary_color text,
  custom_domain text
);
comment on type app_public.organization_branding is 'How the organization looks.';
comment on column app_public.organization_branding.logo_url is 'An https:// URL, or null.';
comment on column app_public.organization_branding.primary_color is 'A colour as #rrggbb (default #4f46e5).';
comment on column app_public.organization_branding.custom_domain is 'A host name such as app.example.com, or null.';

create type app_public.organization_features as (
  sso_enabled boolean,
  api_access_enabled boolean,
  audit_log_retention_days int
);
comment on type app_public.organization_features is 'What the organization has switched on.';
comment on column app_public.organization_features.api_access_enabled is 'When false, the organization''s API keys stop working.';
comment on column app_public.organization_features.audit_log_retention_days is 'Audit entries older than this many days (1–3650) are deleted daily.';

create function app_public.organization_settings_branding_settings(s app_public.organization_settings)
returns app_public.organization_branding
  language sql stable
as $$
  select (s.branding ->> 'logoUrl', s.branding ->> 'primaryColor', s.branding ->> 'customDomain')::app_public.organization_branding;
$$;
comment on function app_public.organization_settings_branding_settings(app_public.organization_settings) is
  E'@fieldName branding\nBranding: logoUrl, primaryColor, customDomain.';

create function app_public.organization_settings_feature_settings(s app_public.organization_settings)
returns app_public.organization_features
  language sql stable
as $$
  select ((s.features ->> 'ssoEnabled')::boolean, (s.features ->> 'apiAccessEnabled')::boolean,
          (s.features ->> 'auditLogRetentionDays')::int)::app_public.organization_features;
$$;
comment on function app_public.organization_settings_feature_settings(app_public.organization_settings) is
  E'@fieldName features\nFeatures: ssoEnabled, apiAccessEnabled, auditLogRetentionDays.';

create function app_public.update_organization_settings(organization_id uuid, patch jsonb)
returns app_public.organization_settings
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_key text;
  v_settings app_public.organization_settings;
begin
  perform app_private.assert_team_admin(update_organization_settings.organization_id, 'change settings');
  if patch is null or jsonb_typeof(patch) <> 'object' then
    perform app_private.settings_error('patch', 'must be an object like {"branding": {…}, "features": {…}}');
  end if;
  for v_key in select jsonb_object_keys(patch) loop
    if v_key not in ('branding', 'features') then
      perform app_private.settings_error(v_key, 'unknown section (known: branding, features)');
    end if;
    if jsonb_typeof(patch -> v_key) <> 'object' then
      perform app_private.settings_error(v_key, 'must be an object');
    end if;
  end loop;
  -- Shallow merge per section: keys given replace, keys left out stay.
  update app_public.organization_settings s
  set branding = s.branding || coalesce(patch -> 'branding', '{}'),
      features = s.features || coalesce(patch -> 'features', '{}')
  where s.organization_id = update_organization_settings.organization_id
  returning * into v_settings;
  return v_settings;
end;
$$;
comment on function app_public.update_organization_settings(uuid, jsonb) is
  E'@resultFieldName organizationSettings\nMerges a patch into the organization''s settings (admins and owners), e.g. {"branding": {"primaryColor": "#112233"}, "features": {"auditLogRetentionDays": 90}}. Keys left out keep their value; unknown keys, wrong types and out-of-range values are refused with INVALID_SETTINGS naming the path, and nothing changes.';

--------------------------------------------------------------------------------------------------
-- User settings
--------------------------------------------------------------------------------------------------

create table app_public.user_settings (
  user_id uuid primary key references app_public.users on delete cascade,
  locale text not null default 'en',
  timezone text not null default 'UTC',
  email_notifications boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid
);
comment on table app_public.user_settings is
  E'@behavior -insert -update -delete\nThe signed-in user''s preferences. Change with updateUserSettings.';
comment on column app_public.user_settings.locale is 'A language tag such as en, de-CH or pt-BR.';
comment on column app_public.user_settings.timezone is 'An IANA time zone name such as Europe/Berlin.';
create trigger _100_audit_columns before insert or update on app_public.user_settings
  for each row execute function app_private.tg_audit_columns();

create function app_private.tg_user_settings_validate() returns trigger
  language plpgsql volatile
  set search_path = pg_catalog, public
as $$
begin
  if new.locale is null or new.locale !~ '^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$' then
    perform app_private.settings_error('locale', format('must be a language tag like en or pt-BR, got %s', coalesce(to_jsonb(new.locale)::text, 'null')));
  end if;
  if new.timezone is null or not exists (select 1 from pg_catalog.pg_timezone_names t where t.name = new.timezone) then
    perform app_private.settings_error('timezone', format('must be an IANA time zone like Europe/Berlin, got %s', coalesce(to_jsonb(new.timezone)::text, 'null')));
  end if;
  return new;
end;
$$;
create trigger _010_validate before insert or update on app_public.user_settings
  for each row execute function app_private.tg_user_settings_validate();

create function app_private.tg_users_settings_row() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  insert into app_public.user_settings (user_id) values (new.id) on conflict (user_id) do nothing;
  return null;
end;
$$;
create trigger _210_settings_row after insert on app_public.users
  for each row execute function app_private.tg_users_settings_row();
insert into app_public.user_settings (user_id) select id from app_public.users on conflict do nothing;

create function app_public.update_user_settings(patch jsonb) returns app_public.user_settings
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_settings app_public.user_settings;
begin
  if app_public.current_user_id() is null then
    perform app_hidden.raise_error('NOT_AUTHENTICATED', 'Sign in to change your settings.');
  end if;
  perform app_private.check_settings_shape(patch, 'patch',
    '{"locale": "string", "timezone": "string", "emailNotifications": "boolean"}');
  insert into app_public.user_settings (user_id) values (app_public.current_user_id())
  on conflict (user_id) do nothing;
  update app_public.user_settings s
  set locale = coalesce(patch ->> 'locale', s.locale),
      timezone = coalesce(patch ->> 'timezone', s.timezone),
      email_notifications = coalesce((patch ->> 'emailNotifications')::boolean, s.email_notifications)
  where s.user_id = app_public.current_user_id()
  returning * into v_settings;
  return v_settings;
end;
$$;
comment on function app_public.update_user_settings(jsonb) is
  E'@resultFieldName userSettings\nMerges a patch into your settings, e.g. {"timezone": "Europe/Berlin", "emailNotifications": false}. Unknown keys and wrong types: INVALID_SETTINGS.';

create function app_public.my_settings() returns app_public.user_settings
  language sql stable
  set search_path = pg_catalog, public
as $$
  select s.* from app_public.user_settings s where s.user_id = app_public.current_user_id();
$$;
comment on function app_public.my_settings() is 'The signed-in user''s settings.';

--! split: 240-api-keys.sql
-- Organization API keys: server-to-server access for one organization, with the key's role
-- (member or admin), under the same RLS policies as users.
--
-- The secret ("tb_live_" + 256 random bits in hex) is returned once by createApiKey; only its
-- SHA-256 is stored, in app_private. The server's auth middleware hands the secret to
-- app_hidden.authenticate_api_key (as the owner role), which finds the key by hash, refuses
-- revoked/expired keys, counts the call, and answers the key id. The request then runs as
-- app_user with the setting jwt.claims.api_key_id and no user id; current_user_organization_ids()
-- (replaced below) answers only the key's organization, and only when the key's role is at least
-- the role asked for. Everything else follows from the policies.

create table app_public.api_keys (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  name text not null,
  role app_public.organization_role not null default 'member',
  secret_prefix text not null,
  expires_at timestamptz,
  last_used_at timestamptz,
  revoked_at timestamptz,
  revoked_by uuid references app_public.users on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id),
  constraint api_keys_name_check check (length(name) between 1 and 100 and name = btrim(name)),
  constraint api_keys_role_check check (role in ('member', 'admin'))
);
comment on table app_public.api_keys is
  E'@behavior -insert -update -delete\nA key a customer''s backend uses to call the API for one organization (Authorization: Bearer tb_live_…).';
comment on column app_public.api_keys.role is 'member or admin: what the key may do, as a member with that role would.';
comment on column app_public.api_keys.secret_prefix is 'The first characters of the secret, to recognise a key.';
comment on column app_public.api_keys.expires_at is 'After this the key is refused (INVALID_TOKEN); null: never expires.';
comment on column app_public.api_keys.last_used_at is 'Last request made with the key (updated at most once a minute).';
comment on column app_public.api_keys.revoked_at is 'Set by revokeApiKey; the key is refused from then on.';
create index api_keys_id_idx on app_public.api_keys (id);
create index api_keys_organization_created_idx on app_public.api_keys (organization_id, created_at desc);
create index api_keys_revoked_by_idx on app_public.api_keys (revoked_by);
create trigger _100_audit_columns before insert or update on app_public.api_keys
  for each row execute function app_private.tg_audit_columns();

-- Looked up by hash alone (the secret is all a request carries).
create table app_private.api_key_secrets (
  organization_id uuid not null,
  api_key_id uuid not null,
  secret_hash bytea not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, api_key_id),
  foreign key (organization_id, api_key_id) references app_public.api_keys on delete cascade,
  constraint api_key_secrets_secret_hash_key unique (secret_hash)
);
create trigger _100_audit_columns before insert or update on app_private.api_key_secrets
  for each row execute function app_private.tg_audit_columns();

create function app_hidden.current_api_key_id() returns uuid
  language sql stable parallel safe
as $$
  select nullif(current_setting('jwt.claims.api_key_id', true), '')::uuid;
$$;
comment on function app_hidden.current_api_key_id() is 'The API key the request was made with, or null.';

-- Same signature and, for users, the same answer as the foundation's version. For a request
-- made with an API key (and no user): the key's organization, if the key is live, the
-- organization is not deleted and the key's role is at least min_role.
create or replace function app_public.current_user_organization_ids(
  min_role app_public.organization_role default 'member'
) returns uuid[]
  -- PL/pgSQL, not SQL: a SECURITY DEFINER SQL function is never inlined, so PostgreSQL parsed
  -- and planned its body on every call (2-6 ms per statement under load, measured in
  -- bench/rls-helper.ts); PL/pgSQL keeps its plans per connection.
  language plpgsql stable security definer parallel safe
  set search_path = pg_catalog, public
as $$
declare
  v_user_id uuid := app_public.current_user_id();
  v_api_key_id uuid;
  v_ids uuid[];
begin
  if v_user_id is not null then
    select coalesce(array_agg(m.organization_id), '{}') into v_ids
    from app_public.organization_members m
    join app_public.organizations o on o.id = m.organization_id
    where m.user_id = v_user_id
      and m.role >= min_role
      and o.deleted_at is null;
    return v_ids;
  end if;
  v_api_key_id := app_hidden.current_api_key_id();
  if v_api_key_id is not null then
    select coalesce(array_agg(k.organization_id), '{}') into v_ids
    from app_public.api_keys k
    join app_public.organizations o on o.id = k.organization_id
    where k.id = v_api_key_id
      and k.revoked_at is null
      and (k.expires_at is null or k.expires_at > now())
      and k.role >= min_role
      and o.deleted_at is null;
    return v_ids;
  end if;
  return '{}'::uuid[];
end;
$$;

create type app_public.api_key_with_secret as (
  api_key app_public.api_keys,
  secret text
);
comment on type app_public.api_key_with_secret is 'A new API key and its secret (shown only here; the database keeps its hash).';
comment on column app_public.api_key_with_secret.secret is 'Send as Authorization: Bearer <secret>. Shown once.';

create function app_public.create_api_key(
  organization_id uuid,
  name text,
  role app_public.organization_role default 'member',
  expires_at timestamptz default null
) returns app_public.api_key_with_secret
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_secret text := 'tb_live_' || encode(gen_random_bytes(32), 'hex');
  v_key app_public.api_keys;
begin
  perform app_private.assert_team_admin(create_api_key.organization_id, 'create API keys');
  if coalesce(create_api_key.role, 'member') not in ('member', 'admin') then
    perform app_hidden.raise_error('INVALID_ROLE', 'An API key is member or admin.');
  end if;
  if create_api_key.name is null or length(btrim(create_api_key.name)) not between 1 and 100 then
    perform app_hidden.raise_error('INVALID_NAME', 'API key name must be 1 to 100 characters.');
  end if;
  if create_api_key.expires_at is not null and create_api_key.expires_at <= now() then
    perform app_hidden.raise_error('INVALID_EXPIRY', 'expiresAt must be in the future.');
  end if;
  if not exists (select 1 from app_public.organization_settings s
                 where s.organization_id = create_api_key.organization_id
                   and (s.features ->> 'apiAccessEnabled')::boolean) then
    perform app_hidden.raise_error('API_ACCESS_DISABLED', 'API access is switched off in the organization''s settings.');
  end if;
  insert into app_public.api_keys (organization_id, name, role, secret_prefix, expires_at)
  values (create_api_key.organization_id, btrim(create_api_key.name), coalesce(create_api_key.role, 'member'),
          left(v_secret, 12), create_api_key.expires_at)
  returning * into v_key;
  insert into app_private.api_key_secrets (organization_id, api_key_id, secret_hash)
  values (v_key.organization_id, v_key.id, digest(v_secret, 'sha256'));
  perform app_private.record_audit_event(v_key.organization_id, 'api_key.created', 'api_key', v_key.id,
    jsonb_build_object('name', v_key.name, 'role', v_key.role, 'expires_at', v_key.expires_at));
  return (v_key, v_secret)::app_public.api_key_with_secret;
end;
$$;
comment on function app_public.create_api_key(uuid, text, app_public.organization_role, timestamptz) is
  E'@flattenPayload\nCreates an API key for the organization (admins and owners). The secret is in the payload, once.';

create function app_public.revoke_api_key(id uuid) returns app_public.api_keys
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_key app_public.api_keys;
begin
  select * into v_key from app_public.api_keys k where k.id = revoke_api_key.id;
  if not found or not v_key.organization_id = any (app_public.current_user_organization_ids()) then
    perform app_hidden.raise_error('NOT_FOUND', 'No such API key.');
  end if;
  perform app_private.assert_team_admin(v_key.organization_id, 'revoke API keys');
  update app_public.api_keys k set revoked_at = coalesce(k.revoked_at, now()),
    revoked_by = coalesce(k.revoked_by, app_public.current_user_id())
  where k.organization_id = v_key.organization_id and k.id = v_key.id
  returning * into v_key;
  perform app_private.record_audit_event(v_key.organization_id, 'api_key.revoked', 'api_key', v_key.id,
    jsonb_build_object('name', v_key.name));
  return v_key;
end;
$$;
comment on function app_public.revoke_api_key(uuid) is
  E'@resultFieldName apiKey\nRevokes an API key (admins and owners): the next request made with it is refused.';

-- Called by the server (as the owner role, never granted to app roles) for each request that
-- carries a tb_live_ secret. Answers nothing for unknown, revoked or expired keys, keys of a
-- deleted organization and organizations whose apiAccessEnabled is off. Counts the call in the
-- organization's api_calls and touches last_used_at at most once a minute (a hot key must not
-- turn every request into a write on one row).
create function app_hidden.authenticate_api_key(secret text)
returns table (api_key_id uuid, organization_id uuid, role app_public.organization_role)
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_key app_public.api_keys;
begin
  if secret is null or secret !~ '^tb_live_[0-9a-f]{64}$' then
    return;
  end if;
  select k.* into v_key
  from app_private.api_key_secrets s
  join app_public.api_keys k on k.organization_id = s.organization_id and k.id = s.api_key_id
  join app_public.organizations o on o.id = k.organization_id
  join app_public.organization_settings st on st.organization_id = k.organization_id
  where s.secret_hash = digest(authenticate_api_key.secret, 'sha256')
    and k.revoked_at is null
    and (k.expires_at is null or k.expires_at > now())
    and o.deleted_at is null
    and (st.features ->> 'apiAccessEnabled')::boolean;
  if not found then
    return;
  end if;
  update app_public.api_keys k set last_used_at = now()
  where k.organization_id = v_key.organization_id and k.id = v_key.id
    and (k.last_used_at is null or k.last_used_at < now() - interval '1 minute');
  perform app_private.count_api_call(v_key.organization_id);
  api_key_id := v_key.id;
  organization_id := v_key.organization_id;
  role := v_key.role;
  return next;
end;
$$;
comment on function app_hidden.authenticate_api_key(text) is
  'For the server only: the live API key with this secret (counting the call), or no row.';

--! split: 250-organization-lifecycle.sql
-- Soft-deleted organizations: gone from every list and lookup (current_user_organization_ids()
-- leaves them out, so every tenant policy hides their rows too), except that their owners can
-- list them (deletedOrganizations) and restore them within 30 days. A daily job hard-deletes them
-- after that; every tenant table references organizations with ON DELETE CASCADE, so one DELETE
-- takes everything (a test checks that every such foreign key cascades).
-- Also here: the audit-log retention job (features.auditLogRetentionDays).

create function app_hidden.organization_restore_window() returns interval
  language sql immutable parallel safe
as $$
  select interval '30 days';
$$;

create function app_public.deleted_organizations() returns setof app_public.organizations
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select o.* from app_public.organizations o
  join app_public.organization_members m on m.organization_id = o.id
  where m.user_id = app_public.current_user_id()
    and m.role = 'owner'
    and o.deleted_at is not null
    and o.deleted_at > now() - app_hidden.organization_restore_window()
  order by o.deleted_at desc;
$$;
comment on function app_public.deleted_organizations() is
  'Organizations you own that were deleted less than 30 days ago (restore them with restoreOrganization).';

create function app_public.restore_organization(id uuid) returns app_public.organizations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_org app_public.organizations;
  v_user_id uuid := app_public.current_user_id();
begin
  if v_user_id is null then
    perform app_hidden.raise_error('NOT_AUTHENTICATED', 'Sign in as a user to restore an organization.');
  end if;
  select o.* into v_org from app_public.organizations o
  where o.id = restore_organization.id
    and exists (select 1 from app_public.organization_members m
                where m.organization_id = o.id and m.user_id = v_user_id)
  for no key update;
  if not found then
    perform app_hidden.raise_error('NOT_FOUND', 'No such organization.');
  end if;
  if not exists (select 1 from app_public.organization_members m
                 where m.organization_id = v_org.id and m.user_id = v_user_id and m.role = 'owner') then
    perform app_hidden.raise_error('FORBIDDEN', 'Only an owner can restore the organization.');
  end if;
  if v_org.deleted_at is null then
    return v_org;
  end if;
  if v_org.deleted_at <= now() - app_hidden.organization_restore_window() then
    perform app_hidden.raise_error('RESTORE_WINDOW_PASSED', 'Organizations can be restored for 30 days after deletion.');
  end if;
  update app_public.organizations o set deleted_at = null where o.id = v_org.id returning * into v_org;
  perform app_private.record_audit_event(v_org.id, 'organization.restored', 'organization', v_org.id,
    jsonb_build_object('by', v_user_id));
  return v_org;
end;
$$;
comment on function app_public.restore_organization(uuid) is
  E'@resultFieldName organization\nRestores a deleted organization (owners, within 30 days: RESTORE_WINDOW_PASSED after).';

-- The daily job: organizations deleted more than 30 days ago, with everything in them.
-- tenantbase.allow_prune lets the cascade delete append-only rows (the audit log) for this
-- transaction only.
create function app_private.hard_delete_organizations() returns int
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_count int;
begin
  perform set_config('tenantbase.allow_prune', 'on', true);
  with gone as (
    delete from app_public.organizations o
    where o.deleted_at is not null and o.deleted_at <= now() - app_hidden.organization_restore_window()
    returning o.id
  )
  select count(*) into v_count from gone;
  perform set_config('tenantbase.allow_prune', '', true);
  return v_count;
end;
$$;
comment on function app_private.hard_delete_organizations() is
  'Deletes organizations soft-deleted more than 30 days ago, cascading through every tenant table. Returns how many.';

-- The daily retention job: each organization's audit entries older than its
-- features.auditLogRetentionDays.
create function app_private.prune_audit_events() returns bigint
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_count bigint;
begin
  perform set_config('tenantbase.allow_prune', 'on', true);
  with gone as (
    delete from app_public.audit_events a
    using app_public.organization_settings s
    where s.organization_id = a.organization_id
      and a.created_at < now() - make_interval(days => (s.features ->> 'auditLogRetentionDays')::int)
    returning 1
  )
  select count(*) into v_count from gone;
  perform set_config('tenantbase.allow_prune', '', true);
  return v_count;
end;
$$;
comment on function app_private.prune_audit_events() is
  'Deletes audit entries older than each organization''s auditLogRetentionDays. Returns how many.';
-- The retention delete scans by (organization_id, created_at).
create index audit_events_organization_created_idx on app_public.audit_events (organization_id, created_at);
