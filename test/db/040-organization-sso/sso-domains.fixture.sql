insert into app_public.sso_domains (organization_id, domain) values ($1::uuid, 'fixture-' || replace($1::text, '-', '') || '.test') on conflict do nothing
