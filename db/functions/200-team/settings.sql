-- Settings of organizations and users: their shape (validated in SQL), typed fields, updates, audit.

create or replace function app_private.settings_error(path text, message text) returns void
  language plpgsql volatile
as $$
begin
  perform app_hidden.raise_error('INVALID_SETTINGS', path || ': ' || message);
end;
$$;

-- Checks one document against a spec: { key: type } where type is one of
-- boolean | integer | string, with "?" suffix for nullable. Returns nothing; raises on the first
-- problem. Range and format rules are checked by the callers.
create or replace function app_private.check_settings_shape(doc jsonb, path text, spec jsonb) returns void
  language plpgsql volatile
  set search_path = pg_catalog, public
as $$
declare
  v_key text;
  v_value jsonb;
  v_type text;
  v_nullable boolean;
begin
  if doc is null or jsonb_typeof(doc) <> 'object' then
    perform app_private.settings_error(path, 'must be an object');
  end if;
  for v_key, v_value in select * from jsonb_each(doc) loop
    v_type := spec ->> v_key;
    if v_type is null then
      perform app_private.settings_error(path || '.' || v_key, format('unknown setting (known: %s)',
        (select string_agg(k, ', ' order by k) from jsonb_object_keys(spec) k)));
    end if;
    v_nullable := v_type like '%?';
    v_type := rtrim(v_type, '?');
    if jsonb_typeof(v_value) = 'null' then
      if not v_nullable then
        perform app_private.settings_error(path || '.' || v_key, format('must be a %s, not null', v_type));
      end if;
    elsif v_type = 'boolean' and jsonb_typeof(v_value) <> 'boolean'
       or v_type = 'string' and jsonb_typeof(v_value) <> 'string'
       or v_type = 'integer' and (jsonb_typeof(v_value) <> 'number' or v_value::text !~ '^-?[0-9]+$') then
      perform app_private.settings_error(path || '.' || v_key,
        format('must be %s %s, got %s', case when v_type = 'integer' then 'an' else 'a' end, v_type, v_value::text));
    end if;
  end loop;
end;
$$;

create or replace function app_private.tg_organization_settings_validate() returns trigger
  language plpgsql volatile
  set search_path = pg_catalog, public
as $$
declare
  v_value jsonb;
begin
  -- Keys left out keep their defaults.
  new.branding := '{"logoUrl": null, "primaryColor": "#4f46e5", "customDomain": null}'::jsonb || coalesce(new.branding, '{}');
  new.features := '{"ssoEnabled": false, "apiAccessEnabled": true, "auditLogRetentionDays": 30}'::jsonb || coalesce(new.features, '{}');
  perform app_private.check_settings_shape(new.branding, 'branding',
    '{"logoUrl": "string?", "primaryColor": "string", "customDomain": "string?"}');
  perform app_private.check_settings_shape(new.features, 'features',
    '{"ssoEnabled": "boolean", "apiAccessEnabled": "boolean", "auditLogRetentionDays": "integer"}');

  v_value := new.branding -> 'logoUrl';
  if jsonb_typeof(v_value) = 'string'
     -- Host: letters, digits, dots and hyphens (optionally a port); the rest: URL characters only,
     -- so no quote, angle bracket or backslash can break out of an HTML attribute or CSS url().
     and (length(v_value #>> '{}') > 2048
          or v_value #>> '{}' !~ '^https://[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+(:[0-9]{1,5})?([/?#][A-Za-z0-9._~:/?#@!$&*+,;=%-]*)?$') then
    perform app_private.settings_error('branding.logoUrl', 'must be an https:// URL of at most 2048 characters');
  end if;
  v_value := new.branding -> 'primaryColor';
  if jsonb_typeof(v_value) = 'string' and v_value #>> '{}' !~ '^#[0-9a-fA-F]{6}$' then
    perform app_private.settings_error('branding.primaryColor', format('must be a colour like #1a2b3c, got %s', v_value));
  end if;
  v_value := new.branding -> 'customDomain';
  if jsonb_typeof(v_value) = 'string'
     and (length(v_value #>> '{}') > 253
          or lower(v_value #>> '{}') !~ '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$') then
    perform app_private.settings_error('branding.customDomain', format('must be a host name like app.example.com, got %s', v_value));
  end if;
  if (new.features ->> 'auditLogRetentionDays')::numeric not between 1 and 3650 then
    perform app_private.settings_error('features.auditLogRetentionDays',
      format('must be between 1 and 3650 days, got %s', new.features -> 'auditLogRetentionDays'));
  end if;
  return new;
end;
$$;

create or replace function app_private.tg_organization_settings_audit() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  if new.branding is distinct from old.branding or new.features is distinct from old.features then
    perform app_private.record_audit_event(new.organization_id, 'settings.changed', 'organization', new.organization_id,
      jsonb_build_object(
        'from', jsonb_build_object('branding', old.branding, 'features', old.features),
        'to', jsonb_build_object('branding', new.branding, 'features', new.features)));
  end if;
  return null;
end;
$$;

-- Created with the organization, in the same transaction.
create or replace function app_private.tg_organizations_settings_row() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  insert into app_public.organization_settings (organization_id) values (new.id)
  on conflict (organization_id) do nothing;
  return null;
end;
$$;

create or replace function app_public.organization_settings_branding_settings(s app_public.organization_settings)
returns app_public.organization_branding
  language sql stable
as $$
  select (s.branding ->> 'logoUrl', s.branding ->> 'primaryColor', s.branding ->> 'customDomain')::app_public.organization_branding;
$$;
comment on function app_public.organization_settings_branding_settings(app_public.organization_settings) is
  E'@fieldName branding\nBranding: logoUrl, primaryColor, customDomain.';

create or replace function app_public.organization_settings_feature_settings(s app_public.organization_settings)
returns app_public.organization_features
  language sql stable
as $$
  select ((s.features ->> 'ssoEnabled')::boolean, (s.features ->> 'apiAccessEnabled')::boolean,
          (s.features ->> 'auditLogRetentionDays')::int)::app_public.organization_features;
$$;
comment on function app_public.organization_settings_feature_settings(app_public.organization_settings) is
  E'@fieldName features\nFeatures: ssoEnabled, apiAccessEnabled, auditLogRetentionDays.';

create or replace function app_public.update_organization_settings(organization_id uuid, patch jsonb)
returns app_public.organization_settings
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_key text;
  v_settings app_public.organization_settings;
begin
  perform app_private.assert_team_admin(update_organization_settings.organization_id, 'change settings');
  if patch is null or jsonb_typeof(patch) <> 'object' then
    perform app_private.settings_error('patch', 'must be an object like {"branding": {…}, "features": {…}}');
  end if;
  for v_key in select jsonb_object_keys(patch) loop
    if v_key not in ('branding', 'features') then
      perform app_private.settings_error(v_key, 'unknown section (known: branding, features)');
    end if;
    if jsonb_typeof(patch -> v_key) <> 'object' then
      perform app_private.settings_error(v_key, 'must be an object');
    end if;
  end loop;
  -- Shallow merge per section: keys given replace, keys left out stay.
  update app_public.organization_settings s
  set branding = s.branding || coalesce(patch -> 'branding', '{}'),
      features = s.features || coalesce(patch -> 'features', '{}')
  where s.organization_id = update_organization_settings.organization_id
  returning * into v_settings;
  return v_settings;
end;
$$;
comment on function app_public.update_organization_settings(uuid, jsonb) is
  E'@resultFieldName organizationSettings\nMerges a patch into the organization''s settings (admins and owners), e.g. {"branding": {"primaryColor": "#112233"}, "features": {"auditLogRetentionDays": 90}}. Keys left out keep their value; unknown keys, wrong types and out-of-range values are refused with INVALID_SETTINGS naming the path, and nothing changes.';

create or replace function app_private.tg_user_settings_validate() returns trigger
  language plpgsql volatile
  set search_path = pg_catalog, public
as $$
begin
  if new.locale is null or new.locale !~ '^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$' then
    perform app_private.settings_error('locale', format('must be a language tag like en or pt-BR, got %s', coalesce(to_jsonb(new.locale)::text, 'null')));
  end if;
  if new.timezone is null or not exists (select 1 from pg_catalog.pg_timezone_names t where t.name = new.timezone) then
    perform app_private.settings_error('timezone', format('must be an IANA time zone like Europe/Berlin, got %s', coalesce(to_jsonb(new.timezone)::text, 'null')));
  end if;
  return new;
end;
$$;

create or replace function app_private.tg_users_settings_row() returns trigger
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  insert into app_public.user_settings (user_id) values (new.id) on conflict (user_id) do nothing;
  return null;
end;
$$;

create or replace function app_public.update_user_settings(patch jsonb) returns app_public.user_settings
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_settings app_public.user_settings;
begin
  if app_public.current_user_id() is null then
    perform app_hidden.raise_error('NOT_AUTHENTICATED', 'Sign in to change your settings.');
  end if;
  perform app_private.check_settings_shape(patch, 'patch',
    '{"locale": "string", "timezone": "string", "emailNotifications": "boolean"}');
  insert into app_public.user_settings (user_id) values (app_public.current_user_id())
  on conflict (user_id) do nothing;
  update app_public.user_settings s
  set locale = coalesce(patch ->> 'locale', s.locale),
      timezone = coalesce(patch ->> 'timezone', s.timezone),
      email_notifications = coalesce((patch ->> 'emailNotifications')::boolean, s.email_notifications)
  where s.user_id = app_public.current_user_id()
  returning * into v_settings;
  return v_settings;
end;
$$;
comment on function app_public.update_user_settings(jsonb) is
  E'@resultFieldName userSettings\nMerges a patch into your settings, e.g. {"timezone": "Europe/Berlin", "emailNotifications": false}. Unknown keys and wrong types: INVALID_SETTINGS.';

create or replace function app_public.my_settings() returns app_public.user_settings
  language sql stable
  set search_path = pg_catalog, public
as $$
  select s.* from app_public.user_settings s where s.user_id = app_public.current_user_id();
$$;
comment on function app_public.my_settings() is 'The signed-in user''s settings.';

create or replace trigger _010_validate before insert or update on app_public.organization_settings
  for each row execute function app_private.tg_organization_settings_validate();

create or replace trigger _900_audit after update on app_public.organization_settings
  for each row execute function app_private.tg_organization_settings_audit();

create or replace trigger _210_settings_row after insert on app_public.organizations
  for each row execute function app_private.tg_organizations_settings_row();

create or replace trigger _010_validate before insert or update on app_public.user_settings
  for each row execute function app_private.tg_user_settings_validate();

create or replace trigger _210_settings_row after insert on app_public.users
  for each row execute function app_private.tg_users_settings_row();
