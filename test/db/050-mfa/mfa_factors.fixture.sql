insert into app_private.mfa_factors (user_id, kind, name, totp_secret_encrypted, confirmed_at) values ($2::uuid, 'totp', 'fixture-' || $1::text, 'v1.fixture', null)
