-- Usage alerts (issue 21, section 3): thresholds an admin sets on the available balance or on
-- how much of a spend cap is used, the alerts they fired (and the notices of grants about to
-- expire), and each user's switch for the alert emails. Rules: db/functions/140-credit-controls.

do $$
begin
  if not exists (select 1 from pg_type t join pg_namespace n on n.oid = t.typnamespace
                 where n.nspname = 'app_public' and t.typname = 'credit_alert_kind') then
    create type app_public.credit_alert_kind as enum ('low_balance', 'cap_used', 'grant_expiring');
  end if;
end
$$;

-- One threshold: "available at or below balance_at_most" (low_balance) or "percent of the cap
-- cap_id used" (cap_used). armed, last_fired_at and fired_window are the firing state, changed
-- only by the crossing transaction's conditional update (alert-firing.sql).
create table if not exists app_public.credit_alert_thresholds (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  kind app_public.credit_alert_kind not null,
  balance_at_most bigint,
  cap_id uuid,
  percent smallint,
  armed boolean not null default true,
  last_fired_at timestamptz,
  fired_window timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id),
  constraint credit_alert_thresholds_target_check check (
    (kind = 'low_balance' and balance_at_most is not null and cap_id is null and percent is null)
    or (kind = 'cap_used' and cap_id is not null and percent is not null and balance_at_most is null)),
  constraint credit_alert_thresholds_balance_check check (balance_at_most between 0 and 1000000000000),
  constraint credit_alert_thresholds_percent_check check (percent between 1 and 100),
  constraint credit_alert_thresholds_cap_fkey foreign key (organization_id, cap_id)
    references app_public.credit_spend_caps on delete cascade
);
comment on table app_public.credit_alert_thresholds is
  E'@behavior -insert -update -delete\nWhen to alert the admins: the available balance at or below balanceAtMost, or a spend cap percent used. Set by admins (setCreditAlertThreshold).';
comment on column app_public.credit_alert_thresholds.armed is
  E'@behavior -*\nFalse once a low_balance threshold fired, until the balance is above it again (internal).';
comment on column app_public.credit_alert_thresholds.fired_window is
  E'@behavior -*\nThe cap period a cap_used threshold last fired in (internal).';
comment on column app_public.credit_alert_thresholds.last_fired_at is 'When this threshold last fired an alert.';
create unique index if not exists credit_alert_thresholds_balance_idx on app_public.credit_alert_thresholds
  (organization_id, balance_at_most) where kind = 'low_balance';
create unique index if not exists credit_alert_thresholds_cap_idx on app_public.credit_alert_thresholds
  (organization_id, cap_id, percent) where kind = 'cap_used';
create index if not exists credit_alert_thresholds_cap_fkey_idx on app_public.credit_alert_thresholds
  (organization_id, cap_id) where cap_id is not null;

-- Every alert fired, for the client's list (newest first) and the emails. Written only by
-- app_private.record_credit_alert. A grant has at most one expiry notice.
create table if not exists app_public.credit_alerts (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  kind app_public.credit_alert_kind not null,
  threshold_id uuid,
  balance_at_most bigint,
  available bigint,
  cap_id uuid,
  percent smallint,
  cap_spent bigint,
  cap_limit bigint,
  cap_period app_public.credit_spend_cap_period,
  cap_resets_at timestamptz,
  grant_id uuid,
  grant_remaining bigint,
  grant_expires_at timestamptz,
  fired_at timestamptz not null default now(),
  emails_queued_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id),
  constraint credit_alerts_threshold_fkey foreign key (organization_id, threshold_id)
    references app_public.credit_alert_thresholds on delete set null (threshold_id),
  constraint credit_alerts_cap_fkey foreign key (organization_id, cap_id)
    references app_public.credit_spend_caps on delete set null (cap_id),
  constraint credit_alerts_grant_fkey foreign key (organization_id, grant_id)
    references app_public.credit_grants on delete set null (grant_id)
);
comment on table app_public.credit_alerts is
  E'@behavior -insert -update -delete\nAn alert that fired: the balance at or below a threshold (low_balance), a spend cap used to a percent (cap_used), or a grant about to expire (grant_expiring). Emailed to the admins and published on organizationEvents.';
comment on column app_public.credit_alerts.emails_queued_at is
  E'@behavior -*\nWhen the per-admin emails were queued (internal: queued once).';
comment on column app_public.credit_alerts.available is 'The available balance in the transaction that fired the alert.';
create index if not exists credit_alerts_fired_idx on app_public.credit_alerts (organization_id, fired_at desc, id desc);
create index if not exists credit_alerts_threshold_idx on app_public.credit_alerts (organization_id, threshold_id) where threshold_id is not null;
create index if not exists credit_alerts_cap_idx on app_public.credit_alerts (organization_id, cap_id) where cap_id is not null;
create unique index if not exists credit_alerts_grant_idx on app_public.credit_alerts (organization_id, grant_id)
  where kind = 'grant_expiring';
create index if not exists credit_alerts_grant_fkey_idx on app_public.credit_alerts (organization_id, grant_id) where grant_id is not null;

-- Each user turns the credit alert emails off for themselves (setCreditAlertEmails).
alter table app_public.user_settings add column if not exists credit_alert_emails boolean not null default true;
comment on column app_public.user_settings.credit_alert_emails is
  'Whether you get the credit alert emails of the organizations you are an admin or owner of (setCreditAlertEmails).';
