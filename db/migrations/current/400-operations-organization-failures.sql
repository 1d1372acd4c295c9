-- Batch jobs (period rollover, grant and reservation expiry, invitation expiry, hard delete,
-- audit pruning) handle each organization on its own: one organization's failure is rolled back
-- alone, logged, and counted here as outcome 'organization_failed' of the job's task (exposed in
-- /metrics as tenantbase_jobs_total).
alter table app_private.job_counters drop constraint if exists job_counters_outcome_check;
alter table app_private.job_counters
  add constraint job_counters_outcome_check check (outcome in ('completed', 'failed', 'organization_failed'));
