--! Previous: sha1:8f3f07e0c379d34b919fe5344f289203f7c7b8ba
--! Hash: sha1:3356ddb3ac565b6f2db1ee27a0cc2a28064b1843
--! Message: operations

--! split: 400-operations.sql
-- Operations (issue 7): what the health endpoints, metrics and operational jobs record.
-- Everything here lives in app_private: never exposed through GraphQL, never granted to the app
-- roles. The server reads it as app_owner for /readyz and /metrics; the worker writes it.

-- One row per running worker process, touched every few seconds. /readyz reports the newest
-- one, so a deployment whose workers all died is visible even though the API still answers.
create table app_private.worker_heartbeats (
  worker_id text primary key,
  hostname text not null,
  pid integer not null,
  started_at timestamptz not null,
  last_seen_at timestamptz not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid
);
comment on table app_private.worker_heartbeats is 'Liveness of graphile-worker processes (workers/operations.ts).';
create index worker_heartbeats_last_seen_at_idx on app_private.worker_heartbeats (last_seen_at desc);
create trigger _100_audit_columns before insert or update on app_private.worker_heartbeats
  for each row execute function app_private.tg_audit_columns();

-- The latest result of each periodic check (backup verification, slow queries, credit ledger):
-- /readyz shows them and /metrics exports them as tenantbase_check_ok{check=…}.
create table app_private.operations_checks (
  name text primary key,
  ok boolean not null,
  details jsonb not null default '{}',
  checked_at timestamptz not null default now(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  constraint operations_checks_name_check check (name ~ '^[a-z][a-z0-9_]{0,62}$')
);
comment on table app_private.operations_checks is
  'Latest outcome per operational check; written through app_private.record_check().';
create trigger _100_audit_columns before insert or update on app_private.operations_checks
  for each row execute function app_private.tg_audit_columns();

-- Any job may report a check with one call, e.g. the credit ledger verification:
--   select app_private.record_check('credit_ledger', false, '{"mismatches": 3}');
create function app_private.record_check(name text, ok boolean, details jsonb default '{}') returns void
  language sql volatile
  set search_path = pg_catalog, public
as $$
  insert into app_private.operations_checks (name, ok, details, checked_at)
  values (record_check.name, record_check.ok, coalesce(record_check.details, '{}'), now())
  on conflict on constraint operations_checks_pkey do update
    set ok = excluded.ok, details = excluded.details, checked_at = excluded.checked_at;
$$;

-- History of backups and restore verifications (the latest of each feeds /readyz and metrics).
create table app_private.backup_runs (
  id uuid primary key default app_hidden.uuid_generate_v7(),
  kind text not null,
  file text not null,
  ok boolean not null,
  details jsonb not null default '{}',
  started_at timestamptz not null,
  finished_at timestamptz not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  constraint backup_runs_kind_check check (kind in ('backup', 'verify')),
  constraint backup_runs_time_check check (finished_at >= started_at)
);
comment on table app_private.backup_runs is 'Every pg_dump and every restore test, with its outcome.';
create index backup_runs_kind_finished_at_idx on app_private.backup_runs (kind, finished_at desc);
create trigger _100_audit_columns before insert or update on app_private.backup_runs
  for each row execute function app_private.tg_audit_columns();

-- Jobs completed and failed per task, cluster-wide (graphile-worker deletes completed jobs, so
-- their number is kept here). Counts only grow; /metrics exports them as counters.
create table app_private.job_counters (
  task_identifier text not null,
  outcome text not null,
  count bigint not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (task_identifier, outcome),
  constraint job_counters_outcome_check check (outcome in ('completed', 'failed'))
);
create trigger _100_audit_columns before insert or update on app_private.job_counters
  for each row execute function app_private.tg_audit_columns();

create function app_private.count_job(task_identifier text, outcome text) returns void
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
create function app_private.tg_jobs_request_id() returns trigger
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
create trigger _100_request_id before insert on graphile_worker._private_jobs
  for each row execute function app_private.tg_jobs_request_id();
