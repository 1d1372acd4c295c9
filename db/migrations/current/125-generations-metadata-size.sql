-- Generation metadata is bounded at 16 kB of JSON text (issue 25, A7): start_generation and
-- complete_generation refuse more with INVALID_METADATA; this constraint holds for every other
-- way a row could be written. NOT VALID: rows written before (up to 64 kB) stay readable; the
-- bound applies to every new or changed row.
alter table app_public.generations drop constraint if exists generations_metadata_size;
alter table app_public.generations
  add constraint generations_metadata_size check (octet_length(metadata::text) <= 16384) not valid;
