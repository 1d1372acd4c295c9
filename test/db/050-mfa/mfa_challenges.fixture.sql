insert into app_private.mfa_challenges (user_id, expires_at, created_by) select $2::uuid, now() + interval '5 minutes', $2::uuid where $1::uuid is not null
