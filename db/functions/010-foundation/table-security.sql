-- Puts a table back to "nothing allowed" before its domain's policy file grants access again.

-- Used by every file in db/policies: puts a table back to "nothing allowed" so that the file
-- that follows is the whole truth about who may do what. RLS is enabled and forced (the owner
-- too is subject to policies), app roles lose every privilege, every policy is dropped, and the
-- owner gets back the one policy that lets migrations, jobs and SECURITY DEFINER functions work.
create or replace function app_private.secure_table(tbl regclass) returns void
  language plpgsql volatile
  set search_path = pg_catalog, public
as $$
declare
  v_policy name;
begin
  execute format('alter table %s enable row level security', tbl);
  execute format('alter table %s force row level security', tbl);
  execute format('revoke all on table %s from public, app_anonymous, app_user, app_authenticator', tbl);
  for v_policy in select polname from pg_policy where polrelid = tbl loop
    execute format('drop policy %I on %s', v_policy, tbl);
  end loop;
  execute format('create policy owner_all on %s for all to app_owner using (true) with check (true)', tbl);
end;
$$;
