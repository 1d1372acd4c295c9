-- When a threshold fires: in the transaction whose balance change or cap charge crossed it, by
-- a conditional update of the threshold's own firing state, so concurrent spends fire it once
-- (the credit account's row lock already orders an organization's balance changes; the
-- conditional update is what makes "once" hold whatever the path). The alert is recorded, and
-- its email job queued, by app_private.record_credit_alert (alert-records.sql).
--
-- low_balance: fires when the available balance is at or below the threshold and the threshold
-- is armed; then it is disarmed until the balance is above it again. At most once per UTC day
-- per threshold, so that a balance oscillating around it (reserve, release, reserve …) cannot
-- turn into unbounded alerts and emails: a crossing on a day it already fired is skipped (the
-- threshold stays armed and fires at the first balance change of a later day that is still at
-- or below it).
-- cap_used: fires once per cap period, when the cap's spent reaches percent of its maxCredits.

create or replace function app_private.tg_credit_accounts_usage_alerts() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_threshold app_public.credit_alert_thresholds;
begin
  for v_threshold in
    update app_public.credit_alert_thresholds t
    set armed = false, last_fired_at = now()
    where t.organization_id = new.organization_id and t.kind = 'low_balance' and t.armed
      and new.available <= t.balance_at_most
      and (t.last_fired_at is null or t.last_fired_at < app_hidden.spend_cap_window_start('day', now()))
    returning t.*
  loop
    perform app_private.record_credit_alert(new.organization_id, 'low_balance',
      threshold_id => v_threshold.id, balance_at_most => v_threshold.balance_at_most, available => new.available);
  end loop;
  update app_public.credit_alert_thresholds t
  set armed = true
  where t.organization_id = new.organization_id and t.kind = 'low_balance' and not t.armed
    and new.available > t.balance_at_most;
  return null;
end;
$$;
comment on function app_private.tg_credit_accounts_usage_alerts() is
  'Fires the low_balance thresholds the new available balance is at or below (once, then disarmed), and re-arms those it is above.';

create or replace trigger _600_usage_alerts after update of available on app_public.credit_accounts
  for each row when (new.available is distinct from old.available)
  execute function app_private.tg_credit_accounts_usage_alerts();

create or replace function app_private.tg_credit_spend_caps_usage_alerts() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_threshold app_public.credit_alert_thresholds;
begin
  -- a refund to a past period, or a lowered limit while the counter is a past period's: no alert
  if new.window_start < app_hidden.spend_cap_window_start(new.period, now()) then
    return null;
  end if;
  for v_threshold in
    update app_public.credit_alert_thresholds t
    set fired_window = new.window_start, last_fired_at = now()
    where t.organization_id = new.organization_id and t.kind = 'cap_used' and t.cap_id = new.id
      and new.window_spent * 100 >= t.percent::bigint * new.max_credits
      and t.fired_window is distinct from new.window_start
    returning t.*
  loop
    perform app_private.record_credit_alert(new.organization_id, 'cap_used',
      threshold_id => v_threshold.id, cap_id => new.id, percent => v_threshold.percent,
      cap_spent => new.window_spent, cap_limit => new.max_credits, cap_period => new.period,
      cap_resets_at => app_hidden.spend_cap_window_end(new.period, new.window_start));
  end loop;
  return null;
end;
$$;
comment on function app_private.tg_credit_spend_caps_usage_alerts() is
  'Fires the cap_used thresholds of a cap whose spent reached their percent, once per cap period.';

create or replace trigger _600_usage_alerts after update of window_spent, window_start, max_credits on app_public.credit_spend_caps
  for each row when (new.window_spent > 0)
  execute function app_private.tg_credit_spend_caps_usage_alerts();
