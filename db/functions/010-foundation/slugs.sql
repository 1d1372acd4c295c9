-- Organization slugs: how a name becomes a slug, which slugs are reserved, how a unique one is
-- chosen, changing a slug once, and finding an organization by a current or old slug.

-- Slugs: lowercase a-z, 0-9 and single hyphens, 3-48 characters.
create or replace function app_hidden.slugify(value text) returns text
  language sql immutable strict parallel safe
as $$
  -- Cut to 40, then trim again: a cut can end on a hyphen ("Acme Rocket Propulsion Laboratories Inc
  -- Group" would end in one and fail the slug check).
  select trim(both '-' from left(trim(both '-' from regexp_replace(lower(value), '[^a-z0-9]+', '-', 'g')), 40));
$$;

create or replace function app_hidden.is_reserved_slug(slug text) returns boolean
  language sql immutable parallel safe
as $$
  select slug = any (array[
    'about', 'account', 'accounts', 'admin', 'administrator', 'api', 'app', 'apps', 'assets', 'auth',
    'billing', 'blog', 'dashboard', 'docs', 'help', 'graphiql', 'graphql', 'healthz', 'invitations',
    'invite', 'login', 'logout', 'mail', 'metrics', 'new', 'null', 'oauth', 'orgs',
    'organization', 'organizations', 'readyz', 'register', 'root', 'settings', 'signin', 'signup',
    'static', 'status', 'support', 'system', 'tenantbase', 'undefined', 'webhooks', 'www'
  ]);
$$;
comment on function app_hidden.is_reserved_slug(text) is 'Words that route elsewhere and cannot be slugs.';

-- Slugs for new organizations also skip reserved words and slugs that still redirect (replaces
-- the version in 010-foundation-fixes.sql; same serialization by advisory lock).
create or replace function app_private.unique_slug(base text) returns text
  language plpgsql volatile
  set search_path = pg_catalog, public
as $$
declare
  v_base text := coalesce(nullif(app_hidden.slugify(base), ''), 'org');
  v_candidate text;
  v_n int := 1;
begin
  if length(v_base) < 3 then
    v_base := v_base || '-org';
  end if;
  perform pg_advisory_xact_lock(hashtext('tenantbase:slug:' || v_base));
  v_candidate := v_base;
  while app_hidden.is_reserved_slug(v_candidate)
     or exists (select 1 from app_public.organizations where slug = v_candidate)
     or exists (select 1 from app_public.organization_slug_redirects where slug = v_candidate) loop
    v_n := v_n + 1;
    v_candidate := v_base || '-' || v_n;
  end loop;
  return v_candidate;
end;
$$;

create or replace function app_public.change_organization_slug(organization_id uuid, slug text) returns app_public.organizations
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_slug text := lower(btrim(change_organization_slug.slug));
  v_org app_public.organizations;
begin
  perform app_private.assert_team_admin(change_organization_slug.organization_id, 'change the slug');
  if v_slug is null or length(v_slug) not between 3 and 48 or v_slug !~ '^[a-z0-9]+(-[a-z0-9]+)*$' then
    perform app_hidden.raise_error('INVALID_SLUG',
      'A slug is 3 to 48 characters: a-z, 0-9 and single hyphens, not at either end.');
  end if;
  if app_hidden.is_reserved_slug(v_slug) then
    perform app_hidden.raise_error('INVALID_SLUG', format('"%s" is reserved.', v_slug));
  end if;
  select * into v_org from app_public.organizations o
  where o.id = change_organization_slug.organization_id
  for no key update;
  if v_org.slug_changed_at is not null then
    perform app_hidden.raise_error('SLUG_ALREADY_CHANGED', 'The slug of an organization can be changed only once.');
  end if;
  -- Both the new slug and the one being vacated are claimed through the same advisory lock the
  -- slug generator takes, so a concurrent change or creation cannot slip between check and write.
  perform pg_advisory_xact_lock(hashtext('tenantbase:slug:' || v_slug));
  if v_slug = v_org.slug
     or exists (select 1 from app_public.organizations o where o.slug = v_slug)
     or exists (select 1 from app_public.organization_slug_redirects r where r.slug = v_slug) then
    perform app_hidden.raise_error('SLUG_TAKEN', format('The slug "%s" is taken.', v_slug));
  end if;
  begin
    insert into app_public.organization_slug_redirects (organization_id, slug) values (v_org.id, v_org.slug);
    update app_public.organizations o set slug = v_slug, slug_changed_at = now()
    where o.id = v_org.id
    returning * into v_org;
  exception when unique_violation then
    perform app_hidden.raise_error('SLUG_TAKEN', format('The slug "%s" is taken.', v_slug));
  end;
  perform app_private.record_audit_event(v_org.id, 'organization.slug_changed', 'organization', v_org.id,
    jsonb_build_object('from', (select r.slug from app_public.organization_slug_redirects r where r.organization_id = v_org.id), 'to', v_slug));
  return v_org;
end;
$$;
comment on function app_public.change_organization_slug(uuid, text) is
  E'@resultFieldName organization\nChanges the slug, once (SLUG_ALREADY_CHANGED after that); the old slug keeps resolving in organizationBySlug. Admins and owners.';

-- Current slug first, then redirects. Not SECURITY DEFINER: RLS decides whether the caller may
-- see the organization (a slug of someone else's organization answers null).
create or replace function app_public.organization_by_slug(slug text) returns app_public.organizations
  language sql stable
  set search_path = pg_catalog, public
as $$
  select o.* from app_public.organizations o
  where o.slug = lower(btrim(organization_by_slug.slug))
  union all
  select o.* from app_public.organization_slug_redirects r
  join app_public.organizations o on o.id = r.organization_id
  where r.slug = lower(btrim(organization_by_slug.slug))
  limit 1;
$$;
comment on function app_public.organization_by_slug(text) is
  'The organization with this slug, or whose slug it was before it was changed.';
