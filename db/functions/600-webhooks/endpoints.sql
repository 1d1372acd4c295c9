-- Webhook endpoints: admins create, change, disable, enable and delete them; members read them
-- (RLS, db/policies/600-webhooks.sql). What a URL may name is decided twice: here at creation,
-- from the URL's text (a literal internal address, localhost, a numeric host form, http outside
-- development), and at every delivery by the worker's HTTP agent for each address the name
-- resolves to (workers/webhooks/ssrf.ts), which is the check that DNS cannot get around.

create or replace trigger _100_audit_columns before insert or update on app_public.webhook_endpoints
  for each row execute function app_private.tg_audit_columns();
create or replace trigger _100_audit_columns before insert or update on app_private.webhook_settings
  for each row execute function app_private.tg_audit_columns();

-- Loopback, private (RFC 1918), link-local (169.254.169.254 included), CGNAT, multicast,
-- unspecified, reserved and documentation ranges, IPv6 unique-local and link-local, and the
-- IPv4-mapped, NAT64 and 6to4 forms that embed an IPv4 address. The same list as
-- workers/webhooks/ssrf.ts (a test compares them).
create or replace function app_private.is_internal_address(address inet) returns boolean
  language sql immutable strict parallel safe
as $$
  select exists (select 1 from unnest(array[
    '0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12',
    '192.0.0.0/24', '192.0.2.0/24', '192.88.99.0/24', '192.168.0.0/16', '198.18.0.0/15', '198.51.100.0/24',
    '203.0.113.0/24', '224.0.0.0/4', '240.0.0.0/4',
    '::/128', '::1/128', '::ffff:0:0/96', '64:ff9b::/96', '64:ff9b:1::/48', '100::/64', '2001:db8::/32',
    '2002::/16', 'fc00::/7', 'fe80::/10', 'fec0::/10', 'ff00::/8'
  ]::inet[]) r (range) where family(r.range) = family(address) and address <<= r.range);
$$;

-- The URL as given, or WEBHOOK_URL_INVALID / WEBHOOK_URL_FORBIDDEN with a sentence.
create or replace function app_private.check_webhook_url(url text) returns text
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
declare
  v_settings app_private.webhook_settings;
  v_parts text[];
  v_host text;
  v_address inet;
begin
  select * into v_settings from app_private.webhook_settings where id;
  if url is null or length(url) > 2000 or url ~ '[\s\x00-\x1f\x7f\\]' then
    perform app_hidden.raise_error('WEBHOOK_URL_INVALID', 'A webhook URL is an absolute https URL of at most 2,000 characters, with no spaces.');
  end if;
  v_parts := regexp_match(url, '^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)([/?#].*)?$');
  if v_parts is null or v_parts[2] = '' then
    perform app_hidden.raise_error('WEBHOOK_URL_INVALID', 'A webhook URL is an absolute https URL, like https://example.com/webhooks.');
  end if;
  if lower(v_parts[1]) not in ('https', 'http') or (lower(v_parts[1]) = 'http' and not coalesce(v_settings.allow_http, false)) then
    perform app_hidden.raise_error('WEBHOOK_URL_INVALID', 'A webhook URL must use https.');
  end if;
  if position('@' in v_parts[2]) > 0 then
    perform app_hidden.raise_error('WEBHOOK_URL_INVALID', 'A webhook URL must not carry a user name or password; use custom headers.');
  end if;
  -- host and optional port
  v_parts := regexp_match(v_parts[2], '^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:[0-9]{1,5})?$');
  if v_parts is null then
    perform app_hidden.raise_error('WEBHOOK_URL_INVALID', 'A webhook URL''s host must be a DNS name or an IP address.');
  end if;
  v_host := lower(rtrim(v_parts[1], '.'));
  if coalesce(v_settings.allow_private_addresses, false) then
    return url;
  end if;
  if v_host = 'localhost' or v_host like '%.localhost' or v_host like '%.internal' or v_host like '%.local' then
    perform app_hidden.raise_error('WEBHOOK_URL_FORBIDDEN', 'A webhook URL must not name a local or internal host.');
  end if;
  if v_host like '[%' then
    begin
      v_address := trim(both '[]' from v_host)::inet;
    exception when others then
      perform app_hidden.raise_error('WEBHOOK_URL_INVALID', 'A webhook URL''s IPv6 address is malformed.');
    end;
  elsif v_host ~ '^(0|[1-9][0-9]{0,2})(\.(0|[1-9][0-9]{0,2})){3}$' then
    begin
      v_address := v_host::inet;
    exception when others then
      perform app_hidden.raise_error('WEBHOOK_URL_INVALID', 'A webhook URL''s IPv4 address is malformed.');
    end;
  elsif v_host ~ '^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}$' then
    -- 2130706433, 0x7f000001, 0177.1, 127.1: numeric forms that resolvers read as an address
    perform app_hidden.raise_error('WEBHOOK_URL_FORBIDDEN', 'A webhook URL must name its host by DNS name or dotted IPv4 address.');
  end if;
  if v_address is not null and app_private.is_internal_address(v_address) then
    perform app_hidden.raise_error('WEBHOOK_URL_FORBIDDEN', 'A webhook URL must not point at a private, loopback, link-local or other internal address.');
  end if;
  return url;
end;
$$;

-- Custom headers: at most 10, names are HTTP tokens (not the ones we set or that change the
-- request's framing), values printable ASCII (no CR/LF), at most 1,000 characters each.
create or replace function app_private.check_webhook_headers(headers jsonb) returns jsonb
  language plpgsql immutable
  set search_path = pg_catalog, public
as $$
declare
  v_key text;
  v_value jsonb;
begin
  if headers is null then
    return '{}';
  end if;
  if jsonb_typeof(headers) <> 'object' then
    perform app_hidden.raise_error('WEBHOOK_HEADERS_INVALID', 'Custom headers are a JSON object of names to string values.');
  end if;
  if (select count(*) from jsonb_object_keys(headers)) > 10 then
    perform app_hidden.raise_error('WEBHOOK_HEADERS_INVALID', 'At most 10 custom headers.');
  end if;
  for v_key, v_value in select * from jsonb_each(headers) loop
    if v_key !~ '^[A-Za-z0-9!#$%&''*+.^_`|~-]{1,100}$' then
      perform app_hidden.raise_error('WEBHOOK_HEADERS_INVALID', 'A header name is 1 to 100 characters of letters, digits and !#$%&''*+.^_`|~-.');
    end if;
    if lower(v_key) ~ '^(webhook-|host$|content-|transfer-encoding$|connection$|keep-alive$|upgrade$|te$|trailer$|expect$|proxy-|user-agent$|cookie$)' then
      perform app_hidden.raise_error('WEBHOOK_HEADERS_INVALID', format('The header %s is set by tenantbase and cannot be overridden.', v_key));
    end if;
    if jsonb_typeof(v_value) <> 'string' or length(v_value #>> '{}') > 1000 or (v_value #>> '{}') !~ '^[\x20-\x7e\t]*$' then
      perform app_hidden.raise_error('WEBHOOK_HEADERS_INVALID', 'A header value is a string of at most 1,000 printable ASCII characters (no line breaks).');
    end if;
  end loop;
  return headers;
end;
$$;

create or replace function app_private.check_webhook_event_types(event_types text[]) returns text[]
  language plpgsql immutable
  set search_path = pg_catalog, public
as $$
declare
  v_type text;
begin
  if event_types is null then
    return '{}';
  end if;
  if cardinality(event_types) > 50 then
    perform app_hidden.raise_error('WEBHOOK_EVENT_TYPE_UNKNOWN', 'At most 50 event types per endpoint (an empty list means all).');
  end if;
  foreach v_type in array event_types loop
    if not app_private.is_webhook_event_type(v_type) then
      perform app_hidden.raise_error('WEBHOOK_EVENT_TYPE_UNKNOWN', format('No event type %s: see webhookEventTypes.', left(coalesce(v_type, 'null'), 100)));
    end if;
  end loop;
  return array(select distinct unnest(event_types) order by 1);
end;
$$;

-- The endpoint with this id among the caller's organizations (NOT_FOUND otherwise), after
-- checking the caller is an admin of it (FORBIDDEN).
create or replace function app_private.webhook_endpoint_for_admin(id uuid, action text) returns app_public.webhook_endpoints
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
declare
  v_endpoint app_public.webhook_endpoints;
begin
  select * into v_endpoint from app_public.webhook_endpoints e where e.id = webhook_endpoint_for_admin.id;
  if not found or not v_endpoint.organization_id = any (app_public.current_user_organization_ids()) then
    perform app_hidden.raise_error('NOT_FOUND', 'No such webhook endpoint.');
  end if;
  perform app_private.assert_team_admin(v_endpoint.organization_id, action);
  return v_endpoint;
end;
$$;

create or replace function app_public.create_webhook_endpoint(
  organization_id uuid,
  url text,
  description text default '',
  event_types text[] default '{}',
  headers jsonb default '{}'
) returns app_public.webhook_endpoint_with_secret
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_endpoint app_public.webhook_endpoints;
  v_plan app_public.plans;
  v_count int;
  v_secret text;
begin
  perform app_private.assert_team_admin(create_webhook_endpoint.organization_id, 'manage webhook endpoints');
  perform app_private.check_webhook_url(create_webhook_endpoint.url);
  if length(coalesce(create_webhook_endpoint.description, '')) > 500 then
    perform app_hidden.raise_error('INVALID_INPUT', 'A description is at most 500 characters.');
  end if;
  -- counted under the organization's counter row lock, so concurrent creations count each other
  perform 1 from app_public.usage_counters c where c.organization_id = create_webhook_endpoint.organization_id for update;
  v_plan := app_private.organization_plan(create_webhook_endpoint.organization_id);
  if v_plan.max_webhook_endpoints is not null then
    select count(*) into v_count from app_public.webhook_endpoints e where e.organization_id = create_webhook_endpoint.organization_id;
    if v_count >= v_plan.max_webhook_endpoints then
      perform app_hidden.raise_error_with('WEBHOOK_ENDPOINT_LIMIT_REACHED',
        format('The %s plan allows %s webhook endpoints; delete one first.', v_plan.name, v_plan.max_webhook_endpoints),
        jsonb_build_object('limit', v_plan.max_webhook_endpoints));
    end if;
  end if;
  -- create/delete cycles are bounded too (each creation is a secret, an audit row, a test quota)
  perform app_private.consume_hourly_quota(create_webhook_endpoint.organization_id, 'webhookEndpointsCreatedPerHour', 30, 'webhook endpoints created');
  insert into app_public.webhook_endpoints (organization_id, url, description, event_types, headers, header_names)
  values (create_webhook_endpoint.organization_id, create_webhook_endpoint.url, btrim(coalesce(create_webhook_endpoint.description, '')),
          app_private.check_webhook_event_types(create_webhook_endpoint.event_types),
          app_private.check_webhook_headers(create_webhook_endpoint.headers),
          array(select jsonb_object_keys(coalesce(create_webhook_endpoint.headers, '{}')) order by 1))
  returning * into v_endpoint;
  v_secret := app_private.add_webhook_secret(v_endpoint.organization_id, v_endpoint.id);
  perform app_private.record_audit_event(v_endpoint.organization_id, 'webhook_endpoint.created', 'webhook_endpoint', v_endpoint.id,
    jsonb_build_object('url', v_endpoint.url, 'event_types', v_endpoint.event_types));
  return (v_endpoint, v_secret)::app_public.webhook_endpoint_with_secret;
end;
$$;
comment on function app_public.create_webhook_endpoint(uuid, text, text, text[], jsonb) is
  E'@flattenPayload\nRegisters a URL that receives the organization''s events (admins and owners). eventTypes: the types it wants (empty: all). The signing secret is in the payload, once.';

-- A null argument leaves that field as it is; an empty eventTypes list means all events.
create or replace function app_public.update_webhook_endpoint(
  id uuid,
  url text default null,
  description text default null,
  event_types text[] default null,
  headers jsonb default null
) returns app_public.webhook_endpoints
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_endpoint app_public.webhook_endpoints := app_private.webhook_endpoint_for_admin(update_webhook_endpoint.id, 'manage webhook endpoints');
begin
  if num_nulls(update_webhook_endpoint.url, update_webhook_endpoint.description, update_webhook_endpoint.event_types, update_webhook_endpoint.headers) = 4 then
    perform app_hidden.raise_error('EMPTY_PATCH', 'Nothing to change.');
  end if;
  if update_webhook_endpoint.url is not null then
    perform app_private.check_webhook_url(update_webhook_endpoint.url);
  end if;
  if length(coalesce(update_webhook_endpoint.description, '')) > 500 then
    perform app_hidden.raise_error('INVALID_INPUT', 'A description is at most 500 characters.');
  end if;
  update app_public.webhook_endpoints e set
    url = coalesce(update_webhook_endpoint.url, e.url),
    description = coalesce(btrim(update_webhook_endpoint.description), e.description),
    event_types = case when update_webhook_endpoint.event_types is null then e.event_types
                       else app_private.check_webhook_event_types(update_webhook_endpoint.event_types) end,
    headers = case when update_webhook_endpoint.headers is null then e.headers
                   else app_private.check_webhook_headers(update_webhook_endpoint.headers) end,
    header_names = case when update_webhook_endpoint.headers is null then e.header_names
                        else array(select jsonb_object_keys(update_webhook_endpoint.headers) order by 1) end
  where e.organization_id = v_endpoint.organization_id and e.id = v_endpoint.id
  returning * into v_endpoint;
  perform app_private.record_audit_event(v_endpoint.organization_id, 'webhook_endpoint.updated', 'webhook_endpoint', v_endpoint.id,
    jsonb_build_object('url', v_endpoint.url, 'event_types', v_endpoint.event_types));
  return v_endpoint;
end;
$$;
comment on function app_public.update_webhook_endpoint(uuid, text, text, text[], jsonb) is
  E'@resultFieldName webhookEndpoint\nChanges an endpoint (admins and owners); arguments left out stay as they are. An empty eventTypes list means all events.';

-- Disabled endpoints receive nothing; their pending deliveries fail when their job runs.
create or replace function app_public.disable_webhook_endpoint(id uuid) returns app_public.webhook_endpoints
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_endpoint app_public.webhook_endpoints := app_private.webhook_endpoint_for_admin(disable_webhook_endpoint.id, 'manage webhook endpoints');
begin
  update app_public.webhook_endpoints e set disabled_at = coalesce(e.disabled_at, now()), disabled_reason = coalesce(e.disabled_reason, 'admin')
  where e.organization_id = v_endpoint.organization_id and e.id = v_endpoint.id
  returning * into v_endpoint;
  perform app_private.record_audit_event(v_endpoint.organization_id, 'webhook_endpoint.disabled', 'webhook_endpoint', v_endpoint.id, '{}');
  return v_endpoint;
end;
$$;
comment on function app_public.disable_webhook_endpoint(uuid) is
  E'@resultFieldName webhookEndpoint\nStops deliveries to an endpoint (admins and owners).';

-- Enabling starts afresh (failing_since cleared). recover: also send what it missed — every
-- message since it started failing (or was disabled), within the 30 days kept, that it wants and
-- did not receive (app_private.recover_webhook_deliveries, replays.sql).
create or replace function app_public.enable_webhook_endpoint(id uuid, recover boolean default false) returns app_public.webhook_endpoints
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_endpoint app_public.webhook_endpoints := app_private.webhook_endpoint_for_admin(enable_webhook_endpoint.id, 'manage webhook endpoints');
  v_missed_since timestamptz := coalesce(v_endpoint.failing_since, v_endpoint.disabled_at);
begin
  -- the URL is checked again: the rules (or the settings) may have changed since it was made
  perform app_private.check_webhook_url(v_endpoint.url);
  update app_public.webhook_endpoints e set disabled_at = null, disabled_reason = null, failing_since = null
  where e.organization_id = v_endpoint.organization_id and e.id = v_endpoint.id
  returning * into v_endpoint;
  perform app_private.record_audit_event(v_endpoint.organization_id, 'webhook_endpoint.enabled', 'webhook_endpoint', v_endpoint.id,
    jsonb_build_object('recover', coalesce(enable_webhook_endpoint.recover, false)));
  if coalesce(enable_webhook_endpoint.recover, false) and v_missed_since is not null then
    perform app_private.recover_webhook_deliveries(v_endpoint, greatest(v_missed_since, now() - interval '30 days'));
  end if;
  return v_endpoint;
end;
$$;
comment on function app_public.enable_webhook_endpoint(uuid, boolean) is
  E'@resultFieldName webhookEndpoint\nResumes deliveries to an endpoint (admins and owners). recover: true also sends, with their original webhook-id, the messages it missed since it started failing or was disabled (within 30 days).';

create or replace function app_public.delete_webhook_endpoint(id uuid) returns app_public.webhook_endpoints
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_endpoint app_public.webhook_endpoints := app_private.webhook_endpoint_for_admin(delete_webhook_endpoint.id, 'manage webhook endpoints');
begin
  delete from app_public.webhook_endpoints e where e.organization_id = v_endpoint.organization_id and e.id = v_endpoint.id;
  perform app_private.record_audit_event(v_endpoint.organization_id, 'webhook_endpoint.deleted', 'webhook_endpoint', v_endpoint.id,
    jsonb_build_object('url', v_endpoint.url));
  return v_endpoint;
end;
$$;
comment on function app_public.delete_webhook_endpoint(uuid) is
  E'@resultFieldName webhookEndpoint\nDeletes an endpoint with its secrets and delivery log (admins and owners).';
