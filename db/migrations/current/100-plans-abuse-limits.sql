-- Limits against using the product to hurt others or to farm free credits, kept with the other
-- plan limits (null: no limit; operators change them with an UPDATE of app_public.plans):
-- - how many organizations on this plan one user may own (every new organization gets the free
--   plan's monthly credits, so without a limit a user could create organizations for credits);
-- - how many invitation emails an organization on this plan may send per hour, and to one
--   address per day (invite → revoke → invite sent mail to any address without limit).
alter table app_public.plans add column if not exists max_owned_organizations int;
alter table app_public.plans add column if not exists max_invitations_per_hour int;
alter table app_public.plans add column if not exists max_invitations_per_email_per_day int;
alter table app_public.plans drop constraint if exists plans_abuse_limits_check;
alter table app_public.plans add constraint plans_abuse_limits_check check (
  coalesce(max_owned_organizations, 1) >= 1 and coalesce(max_invitations_per_hour, 1) >= 1
  and coalesce(max_invitations_per_email_per_day, 1) >= 1);
comment on column app_public.plans.max_owned_organizations is
  'How many organizations on this plan one user may own (null: any number). ORGANIZATION_LIMIT_REACHED past it.';
comment on column app_public.plans.max_invitations_per_hour is
  'Invitation emails (invites and resends) an organization on this plan may send per hour (null: no limit).';
comment on column app_public.plans.max_invitations_per_email_per_day is
  'Invitation emails an organization on this plan may send to one address per day (null: no limit).';

-- Data: the limits of the plans this project ships (only where still unset).
update app_public.plans set max_owned_organizations = 3 where id = 'free' and max_owned_organizations is null;
update app_public.plans set max_invitations_per_hour = case id when 'free' then 20 when 'pro' then 100 else 500 end
 where max_invitations_per_hour is null;
update app_public.plans set max_invitations_per_email_per_day = 5 where max_invitations_per_email_per_day is null;

-- Every invitation email sent (invite or resend), to count them per hour and per address per
-- day. Rows older than two days are pruned by the invitation expiry sweep.
create table if not exists app_private.invitation_sends (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  email citext not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id)
);
create index if not exists invitation_sends_organization_created_idx
  on app_private.invitation_sends (organization_id, created_at);
create index if not exists invitation_sends_organization_email_created_idx
  on app_private.invitation_sends (organization_id, email, created_at);
create index if not exists invitation_sends_created_idx on app_private.invitation_sends (created_at);
