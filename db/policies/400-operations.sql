-- Operations tables (db/migrations/current/400-operations.sql): internal to the server and the
-- worker, which use them as app_owner. No app role gets any privilege or policy; secure_table
-- forces RLS and leaves only the owner's policy.
select app_private.secure_table('app_private.worker_heartbeats');
select app_private.secure_table('app_private.operations_checks');
select app_private.secure_table('app_private.backup_runs');
select app_private.secure_table('app_private.job_counters');
