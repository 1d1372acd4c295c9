-- Jobs: counted per task for /metrics; a job queued inside a request carries its request id.

create or replace function app_private.count_job(task_identifier text, outcome text) returns void
  language sql volatile
  set search_path = pg_catalog, public
as $$
  insert into app_private.job_counters (task_identifier, outcome, count)
  values (count_job.task_identifier, count_job.outcome, 1)
  on conflict (task_identifier, outcome) do update set count = app_private.job_counters.count + 1;
$$;

-- Several counts in one statement: a worker adds up its outcomes in memory and writes them while
-- the previous write is not running (workers/operations.ts), so a burst of jobs costs a few
-- writes instead of one transaction per job all updating the same row. Arrays of equal length;
-- a task and outcome may appear more than once.
create or replace function app_private.count_jobs(task_identifiers text[], outcomes text[], counts integer[]) returns void
  language plpgsql volatile
  set search_path = pg_catalog, public
as $$
begin
  if cardinality(task_identifiers) is distinct from cardinality(outcomes)
     or cardinality(task_identifiers) is distinct from cardinality(counts) then
    raise exception 'count_jobs: arrays of different lengths' using errcode = '22023';
  end if;
  insert into app_private.job_counters (task_identifier, outcome, count)
  select c.task_identifier, c.outcome, sum(c.n)
  from unnest(task_identifiers, outcomes, counts) as c (task_identifier, outcome, n)
  where c.n > 0
  group by c.task_identifier, c.outcome
  -- A fixed order, so that two workers writing the same rows never deadlock.
  order by c.task_identifier, c.outcome
  on conflict (task_identifier, outcome) do update set count = app_private.job_counters.count + excluded.count;
end;
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
