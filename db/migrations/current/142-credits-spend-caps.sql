-- Spend caps (issue 21, section 2): at most N credits reserved per UTC day, ISO week or calendar
-- month, for an organization, one of its projects or one of its API keys, and optionally at most
-- M credits in a single reservation. Enforced by reserve (110-credits/spend-cap-charges.sql)
-- under the organization's credit-account lock.

do $$
begin
  if not exists (select 1 from pg_type t join pg_namespace n on n.oid = t.typnamespace
                 where n.nspname = 'app_public' and t.typname = 'credit_spend_cap_scope') then
    create type app_public.credit_spend_cap_scope as enum ('organization', 'project', 'api_key');
  end if;
  if not exists (select 1 from pg_type t join pg_namespace n on n.oid = t.typnamespace
                 where n.nspname = 'app_public' and t.typname = 'credit_spend_cap_period') then
    create type app_public.credit_spend_cap_period as enum ('day', 'week', 'month');
  end if;
end
$$;

create table if not exists app_public.credit_spend_caps (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  scope app_public.credit_spend_cap_scope not null,
  project_id uuid,
  api_key_id uuid,
  period app_public.credit_spend_cap_period not null,
  max_credits bigint not null,
  max_per_reservation bigint,
  window_start timestamptz not null default '-infinity',
  window_spent bigint not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id),
  constraint credit_spend_caps_target_check check (
    (scope = 'organization' and project_id is null and api_key_id is null)
    or (scope = 'project' and project_id is not null and api_key_id is null)
    or (scope = 'api_key' and api_key_id is not null and project_id is null)),
  constraint credit_spend_caps_max_credits_check check (max_credits between 1 and 1000000000000),
  constraint credit_spend_caps_max_per_reservation_check check (max_per_reservation between 1 and max_credits),
  constraint credit_spend_caps_window_spent_check check (window_spent >= 0),
  constraint credit_spend_caps_project_fkey foreign key (organization_id, project_id)
    references app_public.projects on delete cascade,
  constraint credit_spend_caps_api_key_fkey foreign key (organization_id, api_key_id)
    references app_public.api_keys on delete cascade
);
comment on table app_public.credit_spend_caps is
  E'@behavior -insert -update -delete\nAt most maxCredits reserved per UTC day, ISO week or calendar month for the organization, a project or an API key (and at most maxPerReservation at once). Set by admins (setSpendCap); reserve refuses with SPEND_CAP_REACHED.';
comment on column app_public.credit_spend_caps.window_start is
  E'@behavior -*\nThe period the window_spent counter belongs to (internal; see spent and resetsAt).';
comment on column app_public.credit_spend_caps.window_spent is
  E'@behavior -*\nCredits reserved in window_start''s period, less what was released (internal; see spent).';
create unique index if not exists credit_spend_caps_target_period_idx on app_public.credit_spend_caps
  (organization_id, scope, coalesce(project_id, api_key_id, organization_id), period);
create index if not exists credit_spend_caps_project_idx on app_public.credit_spend_caps (organization_id, project_id) where project_id is not null;
create index if not exists credit_spend_caps_api_key_idx on app_public.credit_spend_caps (organization_id, api_key_id) where api_key_id is not null;

-- What each open reservation counted against each cap, so that a release gives it back to the
-- same window. Deleted when the reservation settles.
create table if not exists app_private.credit_reservation_cap_charges (
  organization_id uuid not null,
  reservation_id uuid not null,
  cap_id uuid not null,
  window_start timestamptz not null,
  amount bigint not null check (amount > 0),
  primary key (organization_id, reservation_id, cap_id),
  foreign key (organization_id, reservation_id) references app_public.credit_reservations on delete cascade,
  foreign key (organization_id, cap_id) references app_public.credit_spend_caps on delete cascade
);
create index if not exists credit_reservation_cap_charges_cap_idx on app_private.credit_reservation_cap_charges (organization_id, cap_id);
