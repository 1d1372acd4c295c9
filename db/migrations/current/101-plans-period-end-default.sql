-- A usage period ends at the start of the next UTC month. The default written in 000003 added
-- one month in the session's time zone (under America/New_York a period ended at 01:00 UTC, and
-- the March one three days early). The counter trigger sets both period columns now
-- (db/functions/100-plans/counters.sql); the default agrees with it.
alter table app_public.usage_counters
  alter column period_end set default (date_trunc('month', now() at time zone 'UTC') + interval '1 month') at time zone 'UTC';
