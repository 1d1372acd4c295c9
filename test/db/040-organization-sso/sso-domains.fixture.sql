insert into app_public.sso_domains (organization_id, domain, created_by) values ($1::uuid, 'fixture-' || replace($1::text, '-', '') || '.test', $2::uuid) on conflict do nothing
