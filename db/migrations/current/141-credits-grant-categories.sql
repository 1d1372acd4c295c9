-- Grant categories and priority (issue 21, section 1): every grant says what kind of credits it
-- holds and where it stands in the one spending order (110-credits/grant-order.sql), and every
-- ledger entry that moves credits out of grants says which grants paid for it.

do $$
begin
  if not exists (select 1 from pg_type t join pg_namespace n on n.oid = t.typnamespace
                 where n.nspname = 'app_public' and t.typname = 'credit_grant_category') then
    -- The order of the labels is the order of the third tie-breaker of spending (promotional
    -- before refund before purchased): do not reorder.
    create type app_public.credit_grant_category as enum ('allowance', 'promotional', 'refund', 'purchased');
  end if;
end
$$;

alter table app_public.credit_grants add column if not exists category app_public.credit_grant_category;
alter table app_public.credit_grants add column if not exists priority smallint;

-- Existing grants, by the source they were granted with (plain SQL: no function of db/functions).
update app_public.credit_grants g
set category = case
      when g.source in ('monthly_allowance', 'subscription') then 'allowance'
      when g.source in ('purchase', 'auto_top_up') then 'purchased'
      when g.source = 'refund' then 'refund'
      else 'promotional' end::app_public.credit_grant_category
where g.category is null;
update app_public.credit_grants g
set priority = case g.category when 'allowance' then 10 when 'promotional' then 20 when 'refund' then 30 else 40 end
where g.priority is null;

alter table app_public.credit_grants alter column category set not null;
alter table app_public.credit_grants alter column priority set not null;
alter table app_public.credit_grants drop constraint if exists credit_grants_priority_check;
alter table app_public.credit_grants add constraint credit_grants_priority_check check (priority between 0 and 100);
comment on column app_public.credit_grants.category is
  'allowance (the plan''s credits), promotional (an operator or a promotion), purchased (paid for) or refund.';
comment on column app_public.credit_grants.priority is
  '0–100, lower is spent first. Defaults: allowance 10, promotional 20, refund 30, purchased 40.';

-- The spending order: priority, soonest expiry (never last), category, oldest.
drop index if exists app_public.credit_grants_spend_order_idx;
create index if not exists credit_grants_spend_priority_idx on app_public.credit_grants
  (organization_id, priority, expires_at nulls last, category, created_at, id) where remaining > 0;
create index if not exists credit_grants_category_idx on app_public.credit_grants (organization_id, category) where remaining > 0;

-- Which grants paid for each spend (capture and adjust entries): one row per entry and grant, written
-- with the entry, under the account lock. amount is what the entry took from the grant.
create table if not exists app_public.credit_ledger_allocations (
  organization_id uuid not null references app_public.organizations on delete cascade,
  ledger_entry_id uuid not null,
  grant_id uuid not null,
  amount bigint not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, ledger_entry_id, grant_id),
  constraint credit_ledger_allocations_amount_check check (amount > 0),
  constraint credit_ledger_allocations_ledger_entry_fkey foreign key (organization_id, ledger_entry_id)
    references app_public.credit_ledger on delete cascade,
  constraint credit_ledger_allocations_grant_fkey foreign key (organization_id, grant_id)
    references app_public.credit_grants on delete cascade
);
comment on table app_public.credit_ledger_allocations is
  E'@behavior -insert -update -delete\nWhich grants paid for a spend: one row per grant of each capture and adjust (debit) entry.';
comment on column app_public.credit_ledger_allocations.amount is
  'Credits taken from the grant by this entry.';
create index if not exists credit_ledger_allocations_grant_idx on app_public.credit_ledger_allocations (organization_id, grant_id);
alter table app_public.credit_ledger_allocations add column if not exists updated_at timestamptz not null default now();
alter table app_public.credit_ledger_allocations add column if not exists created_by uuid;

-- (an earlier draft of this branch had the order in a function of its own)
drop function if exists app_private.grants_in_spend_order(uuid, uuid);
