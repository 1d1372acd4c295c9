-- Taking credits away outside a reservation, from the grants in the spending order (grant-order.sql).

-- Takes credits away (refund, chargeback, correction) from the grants in the spending order.
-- An operator's or the system's operation: its key is a system key.
create or replace function app_private.debit_credits(
  organization_id uuid, amount bigint, source text, system_key text
) returns app_public.credit_ledger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_account app_public.credit_accounts;
  v_entry app_public.credit_ledger;
  v_grant_ids uuid[];
  v_takes bigint[];
begin
  if amount is null or amount <= 0 or amount > 1000000000000 then
    perform app_hidden.raise_error('INVALID_AMOUNT', 'Amount must be a whole number of credits from 1 to 10^12.');
  end if;
  v_account := app_private.lock_credit_account(debit_credits.organization_id);
  if system_key is not null then
    v_entry := app_private.ledger_entry_by_system_key(debit_credits.organization_id, system_key);
    if v_entry.id is not null then
      if v_entry.kind <> 'adjust' or v_entry.amount <> -debit_credits.amount then
        perform app_hidden.raise_error('IDEMPOTENCY_KEY_REUSED', 'This idempotency key was used for a different operation.');
      end if;
      return v_entry;
    end if;
  end if;
  perform app_private.expire_due_grants_locked(debit_credits.organization_id);
  v_account := app_private.lock_credit_account(debit_credits.organization_id);
  if v_account.available < amount then
    perform app_hidden.raise_error('INSUFFICIENT_CREDITS', 'Not enough credits available.');
  end if;
  select coalesce(array_agg(t.grant_id), '{}'), coalesce(array_agg(t.take), '{}') into v_grant_ids, v_takes
  from app_private.take_from_grants(debit_credits.organization_id, amount) t;
  update app_public.credit_grants g set remaining = g.remaining - x.take
  from unnest(v_grant_ids, v_takes) as x (grant_id, take)
  where g.organization_id = debit_credits.organization_id and g.id = x.grant_id;
  v_entry := app_private.ledger_append(debit_credits.organization_id, 'adjust', -amount, 0,
    source => coalesce(source, 'manual'), system_key => system_key);
  perform app_private.record_ledger_allocations(v_entry, v_grant_ids, v_takes);
  return v_entry;
end;
$$;
