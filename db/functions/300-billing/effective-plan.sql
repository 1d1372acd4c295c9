-- The plan an organization has now: its subscription's (with grace days when past due) or free.

create or replace function app_private.billing_grace_days() returns int
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select coalesce((select s.grace_days from app_private.billing_settings s where s.id), 7);
$$;
comment on function app_private.billing_grace_days() is
  'Days a past_due subscription keeps its plan (BILLING_GRACE_DAYS, written by the server at start-up).';

-- Whether the organization's plan is paid for through Stripe right now (its credits then come
-- from invoice.paid, once per invoice). The monthly allowance job should skip such organizations
-- so that they are not granted the plan's credits twice.
create or replace function app_private.organization_has_billed_plan(organization_id uuid) returns boolean
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select exists (
    select 1 from app_public.subscriptions s
    where s.organization_id = organization_has_billed_plan.organization_id
      and s.status in ('active', 'trialing', 'past_due')
  );
$$;

-- Replaces the version in 100-plans-and-counters.sql (same signature; every limit check calls it).
--   no subscription             -> organizations.plan_id (free unless set by an operator)
--   active / trialing           -> the subscription's plan
--   past_due                    -> the subscription's plan until current_period_start + grace
--                                  days (the renewal that failed opened that period), then free
--   canceled / unpaid / others  -> free
create or replace function app_private.organization_plan(organization_id uuid) returns app_public.plans
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select p.*
  from app_public.organizations o
  left join app_public.subscriptions s on s.organization_id = o.id
  join app_public.plans p on p.id = case
    when s.organization_id is null then o.plan_id
    when s.status in ('active', 'trialing') then coalesce(s.plan_id, 'free')
    when s.status = 'past_due'
         and now() < coalesce(s.current_period_start, s.last_event_created_at)
                     + make_interval(days => app_private.billing_grace_days())
      then coalesce(s.plan_id, 'free')
    else 'free'
  end
  where o.id = organization_plan.organization_id;
$$;
comment on function app_private.organization_plan(uuid) is
  'The plan whose limits apply to the organization now: follows its Stripe subscription (see 300-billing.sql).';
