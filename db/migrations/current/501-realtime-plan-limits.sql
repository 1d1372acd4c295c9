-- Realtime budgets per plan (issue 25, A4/A5): how many websockets and how many concurrent
-- subscriptions one organization may hold in one server process. Null means the server's
-- default (REALTIME_MAX_CONNECTIONS_PER_ORGANIZATION, REALTIME_MAX_SUBSCRIPTIONS_PER_ORGANIZATION);
-- whatever the plan says, no organization holds more than REALTIME_MAX_ORGANIZATION_SHARE percent
-- of the process's sockets.
alter table app_public.plans add column if not exists max_realtime_sockets int;
alter table app_public.plans add column if not exists max_realtime_subscriptions int;
alter table app_public.plans drop constraint if exists plans_max_realtime_sockets_check;
alter table app_public.plans add constraint plans_max_realtime_sockets_check
  check (max_realtime_sockets is null or max_realtime_sockets >= 0);
alter table app_public.plans drop constraint if exists plans_max_realtime_subscriptions_check;
alter table app_public.plans add constraint plans_max_realtime_subscriptions_check
  check (max_realtime_subscriptions is null or max_realtime_subscriptions >= 0);
comment on column app_public.plans.max_realtime_sockets is
  'Websockets an organization on this plan may hold open per server process; null = the server default.';
comment on column app_public.plans.max_realtime_subscriptions is
  'Concurrent realtime subscriptions an organization on this plan may hold per server process; null = the server default.';
