select app_private.reserve_credits(c.organization_id, 1, 'fixture:spend-cap', 900)
from app_private.grant_credits($1, 1, 'manual', null, 'fixture:spend-cap') g,
     app_private.set_spend_cap($1, 'month', 1000000, null, null, null) c
where $2::uuid is not null
