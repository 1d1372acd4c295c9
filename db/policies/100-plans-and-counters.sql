-- Plans, usage counters, usage periods and projects.

grant execute on function
  app_hidden.usage_period_start(timestamptz)
to app_anonymous, app_user;

grant execute on function
  app_public.delete_project(uuid),
  app_public.restore_project(uuid)
to app_user;

-- plans: a price list; everyone signed in reads it, nobody writes it through the API.
select app_private.secure_table('app_public.plans');
grant select on app_public.plans to app_user;
create policy select_all on app_public.plans for select to app_user using (true);

-- usage_counters / usage_periods: members read their organization's; only triggers and jobs write.
select app_private.secure_table('app_public.usage_counters');
grant select on app_public.usage_counters to app_user;
create policy select_member on app_public.usage_counters for select to app_user
  using (organization_id = any (current_setting('tenantbase.organization_ids')::uuid[]));

select app_private.secure_table('app_public.usage_periods');
grant select on app_public.usage_periods to app_user;
create policy select_member on app_public.usage_periods for select to app_user
  using (organization_id = any (current_setting('tenantbase.organization_ids')::uuid[]));

-- projects: members see live projects, create and rename them; admins and owners also see the
-- deleted ones (to restore them). Deleting and restoring go through delete_project /
-- restore_project, so no client writes deleted_at.
select app_private.secure_table('app_public.projects');
grant select on app_public.projects to app_user;
grant insert (organization_id, name, description) on app_public.projects to app_user;
grant update (name, description) on app_public.projects to app_user;
create policy select_member on app_public.projects for select to app_user
  using (
    organization_id = any (current_setting('tenantbase.organization_ids')::uuid[])
    and (deleted_at is null
         or organization_id = any (current_setting('tenantbase.admin_organization_ids')::uuid[]))
  );
create policy insert_member on app_public.projects for insert to app_user
  with check (organization_id = any (current_setting('tenantbase.organization_ids')::uuid[]));
create policy update_member on app_public.projects for update to app_user
  using (organization_id = any (current_setting('tenantbase.organization_ids')::uuid[]) and deleted_at is null)
  with check (organization_id = any (current_setting('tenantbase.organization_ids')::uuid[]));

-- hourly_quota_usage: internal counts for the hourly quotas (100-plans/quotas.sql); no app role
-- reads them.
select app_private.secure_table('app_private.hourly_quota_usage');
