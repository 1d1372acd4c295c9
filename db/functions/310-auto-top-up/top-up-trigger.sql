-- Where spending meets auto top-up: every reserve, debit, capture and expiry lowers
-- credit_accounts.available under the account's row lock, so a trigger on that column sees each
-- fall without the spend functions knowing about top-ups. The decision is start_auto_top_up
-- (top-up-attempts.sql).

create or replace function app_private.tg_credit_accounts_auto_top_up() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  perform app_private.start_auto_top_up(new.organization_id, new.available);
  return null;
end;
$$;

-- Only when available went down (the WHEN clause costs nothing for grants and other updates),
-- and start_auto_top_up returns at once for an organization without a rule.
create or replace trigger _610_auto_top_up after update of available on app_public.credit_accounts
  for each row when (new.available < old.available) execute function app_private.tg_credit_accounts_auto_top_up();
