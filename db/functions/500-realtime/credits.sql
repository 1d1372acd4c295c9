-- Balance changes reach the organization's `credits` channel. Every ledger entry writes the
-- account in the same statement, so this fires once per change of available or reserved; a
-- transaction that changes the balance many times notifies once (identical notifications of a
-- transaction are folded into one by PostgreSQL).

create or replace function app_private.tg_credit_accounts_realtime() returns trigger
  language plpgsql volatile
as $$
begin
  if tg_op = 'UPDATE' and (old.available, old.reserved) is not distinct from (new.available, new.reserved) then
    return null;
  end if;
  perform pg_notify(
    app_hidden.realtime_topic('credits', new.organization_id),
    json_build_object('organization_id', new.organization_id)::text
  );
  return null;
end;
$$;
comment on function app_private.tg_credit_accounts_realtime() is
  'Notifies creditAccountUpdated subscribers that available or reserved changed.';

create or replace trigger _950_realtime after insert or update on app_public.credit_accounts
  for each row execute function app_private.tg_credit_accounts_realtime();
