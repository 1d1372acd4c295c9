-- Jobs: counted per task for /metrics; a job queued inside a request carries its request id.

create or replace function app_private.count_job(task_identifier text, outcome text) returns void
  language sql volatile
  set search_path = pg_catalog, public
as $$
  insert into app_private.job_counters (task_identifier, outcome, count)
  values (count_job.task_identifier, count_job.outcome, 1)
  on conflict (task_identifier, outcome) do update set count = app_private.job_counters.count + 1;
$$;

-- The request id of the GraphQL request that queued a job travels with it: a job inserted while
-- the transaction setting tenantbase.request_id is set (the server sets it for every request)
-- gets `requestId` in its payload, and the worker's job log lines carry it. Jobs queued outside
-- a request (cron, scripts) and non-object payloads are left alone.
create or replace function app_private.tg_jobs_request_id() returns trigger
  language plpgsql volatile
  set search_path = pg_catalog, public
as $$
declare
  v_request_id text := nullif(current_setting('tenantbase.request_id', true), '');
begin
  if v_request_id is not null and json_typeof(new.payload) = 'object' and (new.payload ->> 'requestId') is null then
    new.payload := (new.payload::jsonb || jsonb_build_object('requestId', v_request_id))::json;
  end if;
  return new;
end;
$$;

create or replace trigger _100_request_id before insert on graphile_worker._private_jobs
  for each row execute function app_private.tg_jobs_request_id();
