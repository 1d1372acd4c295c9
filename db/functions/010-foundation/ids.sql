-- Row ids: time-ordered UUIDv7, generated in the database.

-- UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits. Time-ordered, so new rows
-- land at the right-hand edge of every index on id. PostgreSQL 18 has uuidv7(); 15 does not.
create or replace function app_hidden.uuid_generate_v7() returns uuid
  language sql volatile parallel safe
as $$
  select encode(
    set_bit(
      set_bit(
        overlay(uuid_send(gen_random_uuid())
                placing substring(int8send(floor(extract(epoch from clock_timestamp()) * 1000)::bigint) from 3)
                from 1 for 6),
        52, 1),
      53, 1),
    'hex')::uuid;
$$;
comment on function app_hidden.uuid_generate_v7() is 'A time-ordered UUID (version 7).';
