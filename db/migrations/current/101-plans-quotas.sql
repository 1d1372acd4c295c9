-- Per-plan quotas on what an organization can create (issue 25, findings A4 and A9). Each is a
-- column of app_public.plans (null: no limit; operators change them with an UPDATE of
-- app_public.plans), checked where the thing is created, under a row lock so that concurrent
-- requests count each other:
-- - max_api_keys: live API keys (not revoked, not expired); API_KEY_LIMIT_REACHED past it;
-- - max_api_keys_created_per_hour: keys created per clock hour (UTC), revoked ones included, so
--   create/revoke cycles stop; QUOTA_EXCEEDED;
-- - max_generations_per_hour / max_generations_per_period: generations started in the current
--   clock hour (UTC) / usage period, failed ones included; QUOTA_EXCEEDED;
-- - max_projects_created_per_hour: projects created or restored in the current clock hour (a
--   project deleted since still counts); QUOTA_EXCEEDED;
-- - max_stored_projects: project rows kept, soft-deleted ones included; QUOTA_EXCEEDED;
-- - max_open_reservations: credit reservations open at once (each one holds a job in the shared
--   queue until it expires); QUOTA_EXCEEDED.
alter table app_public.plans add column if not exists max_api_keys int;
alter table app_public.plans add column if not exists max_api_keys_created_per_hour int;
alter table app_public.plans add column if not exists max_generations_per_hour int;
alter table app_public.plans add column if not exists max_generations_per_period int;
alter table app_public.plans add column if not exists max_projects_created_per_hour int;
alter table app_public.plans add column if not exists max_stored_projects int;
alter table app_public.plans add column if not exists max_open_reservations int;
alter table app_public.plans drop constraint if exists plans_quotas_check;
alter table app_public.plans add constraint plans_quotas_check check (
  coalesce(max_api_keys, 0) >= 0
  and coalesce(max_api_keys_created_per_hour, 0) >= 0
  and coalesce(max_generations_per_hour, 0) >= 0
  and coalesce(max_generations_per_period, 0) >= 0
  and coalesce(max_projects_created_per_hour, 0) >= 0
  and coalesce(max_stored_projects, 0) >= 0
  and coalesce(max_open_reservations, 0) >= 0);
comment on column app_public.plans.max_api_keys is
  'Live (not revoked, not expired) API keys an organization on this plan may have (null: any number). API_KEY_LIMIT_REACHED past it.';
comment on column app_public.plans.max_api_keys_created_per_hour is
  'API keys an organization may create per clock hour (UTC), revoked ones included (null: no limit). QUOTA_EXCEEDED past it.';
comment on column app_public.plans.max_generations_per_hour is
  'Generations an organization may start per clock hour (UTC), failed ones included (null: no limit). QUOTA_EXCEEDED past it.';
comment on column app_public.plans.max_generations_per_period is
  'Generations an organization may start per usage period (calendar month, UTC), failed ones included (null: no limit). QUOTA_EXCEEDED past it.';
comment on column app_public.plans.max_projects_created_per_hour is
  'Projects an organization may create or restore per clock hour (UTC); deleted ones still count (null: no limit). QUOTA_EXCEEDED past it.';
comment on column app_public.plans.max_stored_projects is
  'Project rows an organization may keep, soft-deleted ones included (null: no limit). QUOTA_EXCEEDED past it.';
comment on column app_public.plans.max_open_reservations is
  'Credit reservations an organization may hold open at once (null: no limit). QUOTA_EXCEEDED past it.';

-- Data: the quotas of the plans this project ships (only where still unset).
update app_public.plans set max_api_keys = case id when 'free' then 10 when 'pro' then 50 else 200 end
 where max_api_keys is null and id in ('free', 'pro', 'enterprise');
update app_public.plans set max_api_keys_created_per_hour = case id when 'free' then 30 when 'pro' then 200 else 1000 end
 where max_api_keys_created_per_hour is null and id in ('free', 'pro', 'enterprise');
update app_public.plans set max_generations_per_hour = case id when 'free' then 100 when 'pro' then 2000 else 20000 end
 where max_generations_per_hour is null and id in ('free', 'pro', 'enterprise');
update app_public.plans set max_generations_per_period = case id when 'free' then 2000 when 'pro' then 200000 end
 where max_generations_per_period is null and id in ('free', 'pro');
update app_public.plans set max_projects_created_per_hour = case id when 'free' then 10 when 'pro' then 100 else 1000 end
 where max_projects_created_per_hour is null and id in ('free', 'pro', 'enterprise');
update app_public.plans set max_stored_projects = case id when 'free' then 100 when 'pro' then 2000 else 20000 end
 where max_stored_projects is null and id in ('free', 'pro', 'enterprise');
update app_public.plans set max_open_reservations = case id when 'free' then 1000 when 'pro' then 5000 else 20000 end
 where max_open_reservations is null and id in ('free', 'pro', 'enterprise');

-- Hourly quota windows: one row per organization and quota, holding the current clock hour and
-- how much of the quota it used. The row is also the lock concurrent requests queue on.
create table if not exists app_private.hourly_quota_usage (
  organization_id uuid not null references app_public.organizations on delete cascade,
  quota text not null,
  window_start timestamptz not null,
  used int not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, quota),
  constraint hourly_quota_usage_quota_check check (quota ~ '^[a-z][a-zA-Z]{0,39}$'),
  constraint hourly_quota_usage_used_check check (used >= 0)
);
comment on table app_private.hourly_quota_usage is
  'Per organization and hourly quota: the current window (a UTC clock hour) and how much of it was used.';
