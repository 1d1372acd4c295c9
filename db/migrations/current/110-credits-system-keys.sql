-- System operations get their own key column. Until now the monthly allowance
-- ('allowance:<period>'), Stripe grants ('stripe:invoice:<id>', 'stripe:checkout_session:<id>')
-- and a generation's reservation ('generation:<client key>') shared one idempotency-key
-- namespace per organization with the keys clients send, so a client could take a system key
-- first and make the system operation fail for good. Now a client's key can only ever be stored
-- in idempotency_key, and the system's only in system_key: the two cannot meet.

alter table app_public.credit_ledger add column if not exists system_key text;
alter table app_public.credit_reservations add column if not exists system_key text;
alter table app_public.credit_reservations alter column idempotency_key drop not null;

do $$
begin
  if not exists (select 1 from pg_constraint where conname = 'credit_ledger_system_key') then
    alter table app_public.credit_ledger
      add constraint credit_ledger_system_key unique (organization_id, system_key);
  end if;
  if not exists (select 1 from pg_constraint where conname = 'credit_reservations_system_key') then
    alter table app_public.credit_reservations
      add constraint credit_reservations_system_key unique (organization_id, system_key);
  end if;
end;
$$;

comment on column app_public.credit_ledger.idempotency_key is
  'The key the client sent with the mutation that wrote this entry (null for system entries).';
comment on column app_public.credit_ledger.system_key is
  'The key of the system operation that wrote this entry: allowance:<period>, stripe:invoice:<id>, stripe:checkout_session:<id>, generation:<id>, or an operator''s key. No client input reaches it.';
comment on column app_public.credit_reservations.idempotency_key is
  'The key the client sent with reserveCredits (null for a generation''s reservation).';
comment on column app_public.credit_reservations.system_key is
  'generation:<id> for the reservation a generation holds; null for a client''s reservation.';

-- Data: every key the system wrote moves to system_key. Grants and adjustments are only ever
-- made by the system (allowance, Stripe, operators); a reservation belongs to a generation when
-- the generation points at it. The ledger is append-only, so its trigger steps aside for this
-- one change.
alter table app_public.credit_ledger disable trigger _050_append_only;

update app_public.credit_reservations r
   set system_key = 'generation:' || g.id, idempotency_key = null
  from app_public.generations g
 where g.organization_id = r.organization_id and g.reservation_id = r.id and r.system_key is null;

update app_public.credit_ledger l
   set system_key = 'generation:' || l.generation_id, idempotency_key = null
 where l.kind = 'reserve' and l.generation_id is not null and l.idempotency_key is not null;

update app_public.credit_ledger l
   set system_key = l.idempotency_key, idempotency_key = null
 where l.kind in ('grant', 'adjust') and l.idempotency_key is not null;

alter table app_public.credit_ledger enable trigger _050_append_only;

alter table app_public.credit_reservations drop constraint if exists credit_reservations_one_key;
alter table app_public.credit_reservations
  add constraint credit_reservations_one_key check (num_nonnulls(idempotency_key, system_key) = 1);

-- ledger_append takes system_key; grant_credits and debit_credits name their key system_key.
-- Their new texts are in db/functions/110-credits/.
drop function if exists app_private.ledger_append(uuid, app_public.credit_entry_kind, bigint, bigint, text, uuid, uuid, uuid, text, text);
drop function if exists app_private.grant_credits_from(uuid, bigint, text, timestamptz, text, text);
drop function if exists app_private.grant_credits(uuid, bigint, text, timestamptz, text);
drop function if exists app_private.debit_credits(uuid, bigint, text, text);
