select app_private.debit_credits(g.organization_id, 1, 'fixture', 'fixture:ledger-allocations')
from app_private.grant_credits_as($1, 1, 'promotional', 'manual', null, 'fixture:ledger-allocations-grant', 0) g
where $2::uuid is not null
