-- Outbound webhooks (docs/outbound-webhooks.md): endpoints an organization's admins register,
-- their signing secrets, the messages written by the transaction that caused them (an outbox),
-- one delivery per message and endpoint, and every attempt made. Written to run again.

-- How many endpoints an organization may have (null: any number). WEBHOOK_ENDPOINT_LIMIT_REACHED.
alter table app_public.plans add column if not exists max_webhook_endpoints int;
alter table app_public.plans drop constraint if exists plans_max_webhook_endpoints_check;
alter table app_public.plans add constraint plans_max_webhook_endpoints_check check (coalesce(max_webhook_endpoints, 0) >= 0);
comment on column app_public.plans.max_webhook_endpoints is
  'Webhook endpoints an organization on this plan may have, disabled ones included (null: any number). WEBHOOK_ENDPOINT_LIMIT_REACHED past it.';
update app_public.plans set max_webhook_endpoints = case id when 'free' then 3 when 'pro' then 10 else 50 end
where max_webhook_endpoints is null;

-- What the worker tells SQL about where endpoints may point (written by every worker at start-up
-- from WEBHOOK_ALLOW_PRIVATE_ADDRESSES and NODE_ENV), so creation refuses what delivery would.
create table if not exists app_private.webhook_settings (
  id boolean primary key default true,
  allow_private_addresses boolean not null default false,
  allow_http boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  constraint webhook_settings_one_row check (id)
);
insert into app_private.webhook_settings (id) values (true) on conflict (id) do nothing;

create table if not exists app_public.webhook_endpoints (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  url text not null,
  description text not null default '',
  event_types text[] not null default '{}',
  headers jsonb not null default '{}',
  disabled_at timestamptz,
  disabled_reason text,
  failing_since timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id),
  constraint webhook_endpoints_url_check check (length(url) between 8 and 2000),
  constraint webhook_endpoints_description_check check (length(description) <= 500),
  constraint webhook_endpoints_event_types_check check (cardinality(event_types) <= 50),
  constraint webhook_endpoints_headers_check check (jsonb_typeof(headers) = 'object'),
  constraint webhook_endpoints_disabled_check check ((disabled_at is null) = (disabled_reason is null)),
  constraint webhook_endpoints_disabled_reason_check check (disabled_reason in ('admin', 'gone', 'failing'))
);
comment on table app_public.webhook_endpoints is
  E'@behavior -insert -update -delete\nA URL of the organization''s own systems that receives its events, signed (Standard Webhooks). Managed by admins through createWebhookEndpoint, updateWebhookEndpoint, disableWebhookEndpoint, enableWebhookEndpoint, deleteWebhookEndpoint.';
comment on column app_public.webhook_endpoints.event_types is 'The event types it receives; empty: all of them.';
alter table app_public.webhook_endpoints add column if not exists header_names text[] not null default '{}';
comment on column app_public.webhook_endpoints.header_names is 'The names of the custom headers (their values are write-only: they often hold a credential).';
comment on column app_public.webhook_endpoints.headers is E'@behavior -*\nExtra HTTP headers sent with each delivery (at most 10); write-only.';
comment on column app_public.webhook_endpoints.disabled_at is 'Set when disabled: by an admin, by a 410 Gone answer, or after failing for 5 days.';
comment on column app_public.webhook_endpoints.disabled_reason is 'admin, gone (the endpoint answered 410) or failing (every attempt failed for 5 days).';
comment on column app_public.webhook_endpoints.failing_since is 'First failed attempt since the last success; null while healthy.';
create index if not exists webhook_endpoints_id_idx on app_public.webhook_endpoints (id);
create index if not exists webhook_endpoints_organization_created_idx on app_public.webhook_endpoints (organization_id, created_at desc);

-- Signing secrets: the current one (expires_at null) and, for 24 hours after a rotation, the
-- previous ones. Kept as they are because the worker must sign with them; no app role reads them.
create table if not exists app_private.webhook_endpoint_secrets (
  organization_id uuid not null,
  endpoint_id uuid not null,
  id uuid not null default app_hidden.uuid_generate_v7(),
  secret text not null,
  expires_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, endpoint_id, id),
  foreign key (organization_id, endpoint_id) references app_public.webhook_endpoints on delete cascade,
  constraint webhook_endpoint_secrets_secret_check check (secret ~ '^whsec_[A-Za-z0-9+/]{32,88}={0,2}$')
);

create table if not exists app_public.webhook_messages (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  event_type text not null,
  payload jsonb not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id),
  constraint webhook_messages_event_type_check check (length(event_type) between 1 and 100),
  constraint webhook_messages_payload_check check (jsonb_typeof(payload) = 'object')
);
comment on table app_public.webhook_messages is
  E'@behavior -insert -update -delete\nAn event of the organization, written in the transaction that caused it; its id is the webhook-id header. Kept 30 days.';
create index if not exists webhook_messages_organization_created_idx on app_public.webhook_messages (organization_id, created_at desc);
create index if not exists webhook_messages_created_idx on app_public.webhook_messages (created_at);

create table if not exists app_public.webhook_deliveries (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  message_id uuid not null,
  endpoint_id uuid not null,
  status text not null default 'pending',
  attempt_count int not null default 0,
  next_attempt_at timestamptz,
  last_attempt_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id),
  constraint webhook_deliveries_message_fkey foreign key (organization_id, message_id)
    references app_public.webhook_messages (organization_id, id) on delete cascade,
  constraint webhook_deliveries_endpoint_fkey foreign key (organization_id, endpoint_id)
    references app_public.webhook_endpoints (organization_id, id) on delete cascade,
  constraint webhook_deliveries_status_check check (status in ('pending', 'succeeded', 'failed'))
);
comment on table app_public.webhook_deliveries is
  E'@behavior -insert -update -delete\nOne message to one endpoint: pending (an attempt is queued), succeeded or failed (retries exhausted, or the endpoint was disabled).';
comment on column app_public.webhook_deliveries.attempt_count is 'Attempts since it was last queued (a replay starts again at 0).';
create unique index if not exists webhook_deliveries_message_endpoint_key on app_public.webhook_deliveries (organization_id, message_id, endpoint_id);
create index if not exists webhook_deliveries_id_idx on app_public.webhook_deliveries (id);
create index if not exists webhook_deliveries_endpoint_created_idx on app_public.webhook_deliveries (organization_id, endpoint_id, created_at desc);

create table if not exists app_public.webhook_attempts (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  delivery_id uuid not null,
  status_code int,
  duration_ms int not null,
  response_body text,
  error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id),
  constraint webhook_attempts_delivery_fkey foreign key (organization_id, delivery_id)
    references app_public.webhook_deliveries (organization_id, id) on delete cascade,
  constraint webhook_attempts_response_body_check check (length(response_body) <= 4096),
  constraint webhook_attempts_error_check check (length(error) <= 1000),
  constraint webhook_attempts_duration_check check (duration_ms >= 0)
);
comment on table app_public.webhook_attempts is
  E'@behavior -insert -update -delete\nOne HTTP request of a delivery: when, the status code, how long, the first 4 KB of the answer, and the error.';
create index if not exists webhook_attempts_delivery_created_idx on app_public.webhook_attempts (organization_id, delivery_id, created_at);

do $$ begin
  create type app_public.webhook_endpoint_with_secret as (
    webhook_endpoint app_public.webhook_endpoints,
    secret text
  );
exception when duplicate_object then null;
end $$;
comment on type app_public.webhook_endpoint_with_secret is 'An endpoint and its signing secret (shown only here, at creation and rotation).';
comment on column app_public.webhook_endpoint_with_secret.secret is 'whsec_… : verify deliveries with it (any Standard Webhooks library). Shown once.';

-- (an earlier text of this branch had enable_webhook_endpoint(uuid); enabling now takes recover)
drop function if exists app_public.enable_webhook_endpoint(uuid);

-- Requests in flight per organization, across every worker process: a lease per attempt taken
-- before the request and dropped when it is recorded (or left to expire if the worker died).
create table if not exists app_private.webhook_attempt_leases (
  organization_id uuid not null references app_public.organizations on delete cascade,
  delivery_id uuid not null,
  expires_at timestamptz not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, delivery_id)
);
-- (the worker's read of a delivery now takes a lease: new arguments and a busy column)
drop function if exists app_private.webhook_delivery_to_send(uuid, uuid);

-- GraphQL names of the relations: delivery.message, delivery.endpoint, delivery.attempts,
-- message.deliveries, endpoint.deliveries, attempt.delivery.
comment on constraint webhook_deliveries_message_fkey on app_public.webhook_deliveries is
  E'@fieldName message\n@foreignFieldName deliveries';
comment on constraint webhook_deliveries_endpoint_fkey on app_public.webhook_deliveries is
  E'@fieldName endpoint\n@foreignFieldName deliveries';
comment on constraint webhook_attempts_delivery_fkey on app_public.webhook_attempts is
  E'@fieldName delivery\n@foreignFieldName attempts';
