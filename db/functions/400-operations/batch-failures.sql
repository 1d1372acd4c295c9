-- One organization's failure in a batch job: rolled back alone (the caller catches it in a
-- subtransaction), counted for /metrics, and reported to the worker, which logs it and has the
-- job retried later. Never blocks the other organizations of the batch.

-- Counts the failure and raises a WARNING the worker reads (workers/batch.ts): its message is
-- 'organization_failed' and its detail a JSON object with the task, organization, SQLSTATE and
-- error message (business messages only: the statement text never travels with it).
create or replace function app_private.record_organization_failure(
  task text, organization_id uuid, sqlstate text, message text
) returns void
  language plpgsql volatile
  set search_path = pg_catalog, public
as $$
begin
  perform app_private.count_job(task, 'organization_failed');
  raise warning 'organization_failed' using detail = json_build_object(
    'task', task, 'organizationId', organization_id, 'code', sqlstate, 'message', left(message, 500))::text;
end;
$$;
