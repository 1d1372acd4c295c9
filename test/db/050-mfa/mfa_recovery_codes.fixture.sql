insert into app_private.mfa_recovery_codes (user_id, code_hash) values ($2::uuid, digest('fixture-' || $1::text, 'sha256')) on conflict do nothing
