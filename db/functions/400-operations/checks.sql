-- Results of the nightly checks, for /readyz and /metrics.

-- Any job may report a check with one call, e.g. the credit ledger verification:
--   select app_private.record_check('credit_ledger', false, '{"mismatches": 3}');
create or replace function app_private.record_check(name text, ok boolean, details jsonb default '{}') returns void
  language sql volatile
  set search_path = pg_catalog, public
as $$
  insert into app_private.operations_checks (name, ok, details, checked_at)
  values (record_check.name, record_check.ok, coalesce(record_check.details, '{}'), now())
  on conflict on constraint operations_checks_pkey do update
    set ok = excluded.ok, details = excluded.details, checked_at = excluded.checked_at;
$$;
