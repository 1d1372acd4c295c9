-- Usage alert thresholds, the admin's side: set and remove them. Two kinds: the available
-- balance at or below a number of credits (low_balance), and a spend cap used to a percent
-- (cap_used). When they fire: alert-firing.sql.

-- How many thresholds one organization may have (every balance change of the organization reads
-- its low_balance ones, every cap charge the cap's): fixed, the same for every plan.
create or replace function app_hidden.max_credit_alert_thresholds_per_organization() returns int
  language sql immutable parallel safe
as $$
  select 20;
$$;

-- Sets a threshold (admins and owners; FORBIDDEN for members, NOT_FOUND for anyone else).
-- low_balance needs balanceAtMost (0 to 10^12 credits); cap_used needs capId (a cap of the
-- organization) and percent (1 to 100). Setting one that exists returns it unchanged (its
-- firing state kept).
create or replace function app_public.set_credit_alert_threshold(
  organization_id uuid,
  kind app_public.credit_alert_kind,
  balance_at_most numeric default null,
  cap_id uuid default null,
  percent int default null
) returns app_public.credit_alert_thresholds
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_threshold app_public.credit_alert_thresholds;
  v_balance bigint;
begin
  perform app_private.assert_member(organization_id);
  if not organization_id = any (app_public.current_user_organization_ids('admin')) then
    perform app_hidden.raise_error('FORBIDDEN', 'Only admins and owners can change credit alerts.');
  end if;
  if kind = 'low_balance' then
    if balance_at_most is null or cap_id is not null or percent is not null then
      perform app_hidden.raise_error('INVALID_ARGUMENTS', 'A lowBalance alert takes balanceAtMost only (no capId or percent).');
    end if;
    if balance_at_most not between 0 and 1000000000000 or balance_at_most <> trunc(balance_at_most) then
      perform app_hidden.raise_error('INVALID_AMOUNT', 'balanceAtMost must be a whole number of credits from 0 to 10^12.');
    end if;
    v_balance := balance_at_most::bigint;
  elsif kind = 'cap_used' then
    if cap_id is null or percent is null or balance_at_most is not null then
      perform app_hidden.raise_error('INVALID_ARGUMENTS', 'A capUsed alert takes capId and percent (no balanceAtMost).');
    end if;
    if percent not between 1 and 100 then
      perform app_hidden.raise_error('INVALID_PERCENT', 'percent must be a whole number from 1 to 100.');
    end if;
    if not exists (select 1 from app_public.credit_spend_caps c
                   where c.organization_id = set_credit_alert_threshold.organization_id and c.id = set_credit_alert_threshold.cap_id) then
      perform app_hidden.raise_error('NOT_FOUND', 'No such spend cap.');
    end if;
  else
    perform app_hidden.raise_error('INVALID_ARGUMENTS', 'An alert threshold is lowBalance or capUsed.');
  end if;

  -- The account lock orders this with the organization's spending (whose triggers read the
  -- thresholds) and with concurrent threshold changes, so the count below is exact.
  perform app_private.lock_credit_account(organization_id);
  select * into v_threshold from app_public.credit_alert_thresholds t
  where t.organization_id = set_credit_alert_threshold.organization_id and t.kind = set_credit_alert_threshold.kind
    and t.balance_at_most is not distinct from v_balance
    and t.cap_id is not distinct from set_credit_alert_threshold.cap_id
    and t.percent is not distinct from set_credit_alert_threshold.percent::smallint;
  if found then
    return v_threshold;
  end if;
  if (select count(*) from app_public.credit_alert_thresholds t where t.organization_id = set_credit_alert_threshold.organization_id)
     >= app_hidden.max_credit_alert_thresholds_per_organization() then
    perform app_hidden.raise_error_with('CREDIT_ALERT_LIMIT_REACHED',
      format('An organization can have at most %s credit alert thresholds; remove one first.',
             app_hidden.max_credit_alert_thresholds_per_organization()),
      jsonb_build_object('limit', app_hidden.max_credit_alert_thresholds_per_organization()));
  end if;
  insert into app_public.credit_alert_thresholds (organization_id, kind, balance_at_most, cap_id, percent)
  values (organization_id, kind, v_balance, cap_id, percent::smallint)
  returning * into v_threshold;
  return v_threshold;
end;
$$;
comment on function app_public.set_credit_alert_threshold(uuid, app_public.credit_alert_kind, numeric, uuid, int) is
  E'@resultFieldName creditAlertThreshold\nAlerts the admins when the available balance falls to balanceAtMost or below (kind low_balance), or when the spend cap capId is percent used (kind cap_used). Admins and owners; at most 20 per organization (CREDIT_ALERT_LIMIT_REACHED). Setting one that exists returns it.';

-- Removes a threshold (admins and owners). NOT_FOUND for another tenant's. Its alerts stay.
create or replace function app_public.remove_credit_alert_threshold(id uuid) returns app_public.credit_alert_thresholds
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_threshold app_public.credit_alert_thresholds;
begin
  select * into v_threshold from app_public.credit_alert_thresholds t
  where t.id = remove_credit_alert_threshold.id and t.organization_id = any (app_public.current_user_organization_ids());
  if not found then
    perform app_hidden.raise_error('NOT_FOUND', 'No such credit alert threshold.');
  end if;
  if not v_threshold.organization_id = any (app_public.current_user_organization_ids('admin')) then
    perform app_hidden.raise_error('FORBIDDEN', 'Only admins and owners can change credit alerts.');
  end if;
  perform app_private.lock_credit_account(v_threshold.organization_id);
  delete from app_public.credit_alert_thresholds t
  where t.organization_id = v_threshold.organization_id and t.id = v_threshold.id
  returning * into v_threshold;
  return v_threshold;
end;
$$;
comment on function app_public.remove_credit_alert_threshold(uuid) is
  E'@resultFieldName creditAlertThreshold\nRemoves a credit alert threshold (admins and owners). The alerts it fired stay listed.';

create or replace trigger _100_audit_columns before insert or update on app_public.credit_alert_thresholds
  for each row execute function app_private.tg_audit_columns();
