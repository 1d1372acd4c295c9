-- Realtime topics: the one place that names the LISTEN/NOTIFY channels. A channel carries ids,
-- and for generations the row as the change left it (generations.sql: a subscriber is told each
-- status the row passed through, not the one it has at delivery). Any session connected to the
-- database may LISTEN to any channel, so a row in a notification is visible to whoever holds
-- database credentials, who can read it anyway. Nothing else of a payload travels: the server
-- authorises each event for its subscribers and reads the rest under each subscriber's role and
-- claims (server/realtime/). The name is built here from a kind and a uuid, never from client
-- text, and fits PostgreSQL's 63-byte identifier limit ('tb:organization:' + 36 = 52 bytes).

create or replace function app_hidden.realtime_topic(kind text, organization_id uuid) returns text
  language plpgsql immutable parallel safe
as $$
begin
  if kind is null or kind not in ('generations', 'credits', 'organization') or organization_id is null then
    perform app_hidden.raise_error('INVALID_INPUT', 'Unknown realtime topic.');
  end if;
  return 'tb:' || kind || ':' || organization_id::text;
end;
$$;
comment on function app_hidden.realtime_topic(text, uuid) is
  'The LISTEN/NOTIFY channel of one kind of change in one organization (at most 52 bytes).';

-- Sent at commit (NOTIFY is transactional: a rollback sends nothing), and PostgreSQL folds
-- identical notifications of one transaction into one, so a batch touching the same row many
-- times notifies once.
create or replace function app_private.realtime_notify(kind text, organization_id uuid, payload jsonb) returns void
  language plpgsql volatile
as $$
begin
  perform pg_notify(app_hidden.realtime_topic(kind, organization_id), payload::text);
end;
$$;
comment on function app_private.realtime_notify(text, uuid, jsonb) is
  'Queues a notification of ids for the subscribers of one organization; delivered on commit.';
