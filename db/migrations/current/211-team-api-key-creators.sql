-- API keys end with their creator's membership (issue 25, finding A10): the keys a removed
-- member or a deleted account created are revoked, found by created_by. And the live keys of an
-- organization are counted against its plan's max_api_keys at every creation.
create index if not exists api_keys_created_by_idx on app_public.api_keys (created_by, organization_id);
create index if not exists api_keys_live_idx on app_public.api_keys (organization_id) where revoked_at is null;
