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
