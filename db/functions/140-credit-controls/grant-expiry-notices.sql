-- Grants about to expire: one notice per grant (a grant_expiring alert, emailed to the admins
-- like the others) when it expires within `within_days` days and has credits left. Once per
-- grant: the alert's unique index on (organization_id, grant_id) makes a second notice a no-op,
-- whatever the number of runs or workers. Run daily by the notice_expiring_credit_grants task
-- (CREDIT_EXPIRY_NOTICE_DAYS, default 7).

-- The notices for one organization's grants. Returns how many were recorded.
create or replace function app_private.notice_expiring_credit_grants_of(organization_id uuid, within_days int) returns int
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_grant app_public.credit_grants;
  v_count int := 0;
begin
  for v_grant in
    select * from app_public.credit_grants g
    where g.organization_id = notice_expiring_credit_grants_of.organization_id
      and g.remaining > 0 and g.expired_at is null
      and g.expires_at > now() and g.expires_at <= now() + make_interval(days => within_days)
      and not exists (select 1 from app_public.credit_alerts a
                      where a.organization_id = g.organization_id and a.grant_id = g.id and a.kind = 'grant_expiring')
    order by g.expires_at, g.id
  loop
    if app_private.record_credit_alert(v_grant.organization_id, 'grant_expiring',
         grant_id => v_grant.id, grant_remaining => v_grant.remaining, grant_expires_at => v_grant.expires_at,
         available => (select a.available from app_public.credit_accounts a where a.organization_id = v_grant.organization_id)) is not null then
      v_count := v_count + 1;
    end if;
  end loop;
  return v_count;
end;
$$;

-- Every organization with a grant due a notice (at most max_orgs per call), each in a
-- subtransaction of its own: one failure is rolled back alone and reported
-- (400-operations/batch-failures.sql); the others go on.
create or replace function app_private.notice_expiring_credit_grants(within_days int default 7, max_orgs int default 500) returns int
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_organization_id uuid;
  v_count int := 0;
  v_state text;
  v_message text;
begin
  if within_days is null or within_days not between 1 and 365 then
    raise exception 'within_days must be 1 to 365, got %', within_days;
  end if;
  for v_organization_id in
    select distinct g.organization_id from app_public.credit_grants g
    where g.remaining > 0 and g.expired_at is null
      and g.expires_at > now() and g.expires_at <= now() + make_interval(days => within_days)
      and not exists (select 1 from app_public.credit_alerts a
                      where a.organization_id = g.organization_id and a.grant_id = g.id and a.kind = 'grant_expiring')
    order by g.organization_id
    limit greatest(coalesce(max_orgs, 500), 1)
  loop
    begin
      v_count := v_count + app_private.notice_expiring_credit_grants_of(v_organization_id, within_days);
    exception when others then
      get stacked diagnostics v_state = returned_sqlstate, v_message = message_text;
      perform app_private.record_organization_failure('notice_expiring_credit_grants', v_organization_id, v_state, v_message);
    end;
  end loop;
  return v_count;
end;
$$;
comment on function app_private.notice_expiring_credit_grants(int, int) is
  'Records one grant_expiring alert per grant expiring within within_days days with credits left (once per grant); returns how many.';
