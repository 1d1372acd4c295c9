// Hands the account settings from the environment (core/config.ts accountsConfig) to SQL, which
// reads them from app_private.account_settings (db/functions/020-accounts/account-settings.sql).
// Written by every server at start-up; servers of one deployment share one environment.

import type pg from "pg";
import type { AccountsConfig } from "../core/config.ts";

export async function writeAccountSettings(pool: pg.Pool, config: AccountsConfig): Promise<void> {
  await pool.query(
    `insert into app_private.account_settings as s (id, verification_token_ttl, reset_token_ttl, email_change_token_ttl,
       session_idle_timeout, session_lifetime, verified_email_required_for, attempt_limits)
     values (true, make_interval(secs => $1), make_interval(secs => $2), make_interval(secs => $3),
       make_interval(secs => $4), make_interval(secs => $5), $6::text[], $7::jsonb)
     on conflict (id) do update set
       verification_token_ttl = excluded.verification_token_ttl,
       reset_token_ttl = excluded.reset_token_ttl,
       email_change_token_ttl = excluded.email_change_token_ttl,
       session_idle_timeout = excluded.session_idle_timeout,
       session_lifetime = excluded.session_lifetime,
       verified_email_required_for = excluded.verified_email_required_for,
       attempt_limits = excluded.attempt_limits
     where (s.verification_token_ttl, s.reset_token_ttl, s.email_change_token_ttl, s.session_idle_timeout,
            s.session_lifetime, s.verified_email_required_for, s.attempt_limits)
       is distinct from
           (excluded.verification_token_ttl, excluded.reset_token_ttl, excluded.email_change_token_ttl,
            excluded.session_idle_timeout, excluded.session_lifetime, excluded.verified_email_required_for,
            excluded.attempt_limits)`,
    [
      config.verificationTokenTtlSeconds,
      config.resetTokenTtlSeconds,
      config.emailChangeTokenTtlSeconds,
      config.sessionIdleTimeoutSeconds,
      config.sessionLifetimeSeconds,
      config.verifiedEmailRequiredFor,
      JSON.stringify(config.attemptLimits),
    ],
  );
}
