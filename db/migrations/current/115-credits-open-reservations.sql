-- Open reservations are counted per organization against its plan's max_open_reservations at
-- every reservation (issue 25, finding A9).
create index if not exists credit_reservations_open_organization_idx
  on app_public.credit_reservations (organization_id) where status = 'open';
