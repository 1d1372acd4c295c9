-- How many invitation emails an organization may send: per hour, and to one address per day, as
-- its plan says (app_public.plans.max_invitations_per_hour, max_invitations_per_email_per_day).
-- Counted per organization, so one organization's sending never uses up another's allowance, and
-- an address that one organization spams can still be invited by the others.

-- Checks the limits and records the send; called wherever an invitation email is queued (invite
-- and resend). The caller holds the organization's counter-row lock (assert_seat_available) or
-- this takes it, so concurrent invites count each other.
create or replace function app_private.count_invitation_send(organization_id uuid, email citext) returns void
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_plan app_public.plans := app_private.organization_plan(count_invitation_send.organization_id);
  v_sent int;
begin
  perform 1 from app_public.usage_counters c where c.organization_id = count_invitation_send.organization_id for update;
  -- What is older than any window is no longer needed.
  delete from app_private.invitation_sends s
  where s.organization_id = count_invitation_send.organization_id and s.created_at < now() - interval '2 days';

  if v_plan.max_invitations_per_hour is not null then
    select count(*) into v_sent from app_private.invitation_sends s
    where s.organization_id = count_invitation_send.organization_id and s.created_at > now() - interval '1 hour';
    if v_sent >= v_plan.max_invitations_per_hour then
      perform app_hidden.raise_error('INVITATION_LIMIT_REACHED',
        format('This organization has sent %s invitation emails in the last hour, the most its plan allows; try again later.', v_sent));
    end if;
  end if;
  if v_plan.max_invitations_per_email_per_day is not null then
    select count(*) into v_sent from app_private.invitation_sends s
    where s.organization_id = count_invitation_send.organization_id and s.email = count_invitation_send.email
      and s.created_at > now() - interval '1 day';
    if v_sent >= v_plan.max_invitations_per_email_per_day then
      perform app_hidden.raise_error('INVITATION_LIMIT_REACHED',
        format('This address was sent %s invitation emails by this organization in the last day, the most its plan allows; try again tomorrow.', v_sent));
    end if;
  end if;
  insert into app_private.invitation_sends (organization_id, email)
  values (count_invitation_send.organization_id, count_invitation_send.email);
end;
$$;
