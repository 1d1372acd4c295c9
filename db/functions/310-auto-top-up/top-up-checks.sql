-- The nightly check of auto top-up (workers/tasks/verify_credit_ledger.ts): no organization was
-- charged more often, or more money, in a calendar month than its rule allowed when each attempt
-- started.

-- Each attempt that went past its rule: the n-th attempt of its month (canceled ones never reached
-- Stripe and do not count) when the rule allowed fewer, or money charged or pending that month,
-- up to and including it, above the rule's ceiling. Empty when all is well.
create or replace function app_private.auto_top_up_discrepancies()
returns table (organization_id uuid, attempt_id uuid, month timestamptz, nth bigint, max_per_month int,
               amount_so_far numeric, monthly_limit_amount bigint)
  language sql stable security definer
  set search_path = pg_catalog, public
as $$
  select t.organization_id, t.id, t.month, t.nth, t.rule_max_per_month, t.amount_so_far, t.rule_monthly_limit_amount
  from (
    select a.organization_id, a.id, a.status, a.rule_max_per_month, a.rule_monthly_limit_amount,
      app_hidden.auto_top_up_month_start(a.created_at) as month,
      count(*) over w as nth,
      sum(case when a.status not in ('failed', 'canceled') then a.amount else 0 end) over w as amount_so_far
    from app_public.auto_top_up_attempts a
    where a.status <> 'canceled'
    window w as (partition by a.organization_id, app_hidden.auto_top_up_month_start(a.created_at)
                 order by a.created_at, a.id rows between unbounded preceding and current row)
  ) t
  where t.nth > t.rule_max_per_month
     or (t.status not in ('failed', 'canceled') and t.amount_so_far > t.rule_monthly_limit_amount);
$$;
comment on function app_private.auto_top_up_discrepancies() is
  'Auto top-up attempts past their rule''s monthly count or money ceiling (should be none).';
