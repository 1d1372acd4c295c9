-- Fair share (issue 25, section B): how many API requests an organization on this plan may have
-- in flight at once in one server process, counted for requests made with its API keys (a
-- signed-in user's requests are counted per user: which organization they touch is only known
-- inside SQL). Null: the server's FAIR_SHARE_MAX_IN_FLIGHT_PER_ORGANIZATION. Read by
-- server/fair-share/plan-limits.ts through app_private.organization_plan().
alter table app_public.plans add column if not exists max_concurrent_requests int;
alter table app_public.plans drop constraint if exists plans_max_concurrent_requests_check;
alter table app_public.plans add constraint plans_max_concurrent_requests_check
  check (max_concurrent_requests is null or max_concurrent_requests between 1 and 10000);
comment on column app_public.plans.max_concurrent_requests is
  'API-key requests an organization on this plan may have in flight at once per server process (null: the server default). More wait their turn; past the queue RATE_LIMITED.';

-- Data: the plans this project ships (only where still unset).
update app_public.plans set max_concurrent_requests = case id when 'free' then 2 when 'pro' then 4 else 6 end
 where max_concurrent_requests is null and id in ('free', 'pro', 'enterprise');
