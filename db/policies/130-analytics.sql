-- Usage analytics: members of the organization (organization_usage checks membership itself; the
-- rollup it reads lives in app_private and is granted to nobody).
grant execute on function
  app_public.organization_usage(uuid, date, date, app_public.usage_interval)
to app_user;
