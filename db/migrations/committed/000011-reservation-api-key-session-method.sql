--! Previous: sha1:dce26cd944fa0c19eb6a48a13827ab6004f39e3f
--! Hash: sha1:4da21a4480e2db1f3cf2a1bba68103e47912cfd4
--! Message: reservation-api-key-session-method

--! split: 010-foundation-session-method-listed.sql
-- mySessions says how each session was made (password, provider, sso, passkey).
do $$
begin
  if not exists (select 1 from pg_attribute a join pg_type t on t.typrelid = a.attrelid
                 join pg_namespace n on n.oid = t.typnamespace
                 where n.nspname = 'app_public' and t.typname = 'user_session' and a.attname = 'method') then
    alter type app_public.user_session add attribute method text;
  end if;
end;
$$;

--! split: 110-credits-reservation-api-key.sql
-- The API key that made a reservation, so the nightly check can verify an API key's spend cap as
-- it does the organization's and a project's (captures are counted per reservation). Null for a
-- person's reservation, and for those made before this column.
alter table app_public.credit_reservations add column if not exists api_key_id uuid;
alter table app_public.credit_reservations drop constraint if exists credit_reservations_api_key_fkey;
alter table app_public.credit_reservations add constraint credit_reservations_api_key_fkey
  foreign key (organization_id, api_key_id) references app_public.api_keys (organization_id, id) on delete set null (api_key_id);
create index if not exists credit_reservations_api_key_id_idx on app_public.credit_reservations (organization_id, api_key_id)
  where api_key_id is not null;
comment on column app_public.credit_reservations.api_key_id is 'The API key that made this reservation (null: a signed-in person, or a job).';
