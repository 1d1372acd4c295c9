-- Attempt limits that others cannot turn against an account's owner (issue 25, A2): failures are
-- refused per client address and per (address, account) pair; the account alone is only slowed
-- down (a queue of short turns, 020-accounts/attempt-limits.sql); an address that signed in to
-- the account recently is remembered and not slowed down; forgotPassword's per-address count
-- becomes a mail rate. New scopes of attempt_counters:
--   pair   - one client address with one email address (hard limit)
--   known  - a successful sign-in from this address to this email (window_started_at: when)
--   ticket - this address's turn in the account's slow-down queue (window_started_at: its time)
--   mail   - reset mails sent to an address (forgotPassword's mail rate)
alter table app_private.attempt_counters drop constraint if exists attempt_counters_scope_check;
alter table app_private.attempt_counters add constraint attempt_counters_scope_check
  check (scope in ('email', 'address', 'user', 'pair', 'known', 'ticket', 'mail'));
-- On an account's (scope 'email') row of a paced action: when the next turn in its queue starts.
alter table app_private.attempt_counters add column if not exists next_turn_at timestamptz;

alter table app_private.account_settings alter column attempt_limits set default '{
    "authenticate": {"email": {"max": 10, "seconds": 900, "maxDelay": 30}, "pair": {"max": 10, "seconds": 900}, "address": {"max": 50, "seconds": 900}},
    "register": {"pair": {"max": 5, "seconds": 3600}, "address": {"max": 50, "seconds": 3600}},
    "forgot_password": {"email": {"max": 1, "seconds": 600}, "address": {"max": 20, "seconds": 3600}},
    "verify_email": {"email": {"max": 10, "seconds": 3600}, "address": {"max": 50, "seconds": 3600}},
    "reset_password": {"address": {"max": 20, "seconds": 3600}},
    "resend_verification_email": {"user": {"max": 5, "seconds": 3600}},
    "change_email": {"user": {"max": 5, "seconds": 3600}},
    "password_check": {"user": {"max": 10, "seconds": 900}}
  }';
-- A database still on the old defaults takes the new ones (servers also write theirs at start-up).
update app_private.account_settings set attempt_limits = '{
    "authenticate": {"email": {"max": 10, "seconds": 900, "maxDelay": 30}, "pair": {"max": 10, "seconds": 900}, "address": {"max": 50, "seconds": 900}},
    "register": {"pair": {"max": 5, "seconds": 3600}, "address": {"max": 50, "seconds": 3600}},
    "forgot_password": {"email": {"max": 1, "seconds": 600}, "address": {"max": 20, "seconds": 3600}},
    "verify_email": {"email": {"max": 10, "seconds": 3600}, "address": {"max": 50, "seconds": 3600}},
    "reset_password": {"address": {"max": 20, "seconds": 3600}},
    "resend_verification_email": {"user": {"max": 5, "seconds": 3600}},
    "change_email": {"user": {"max": 5, "seconds": 3600}},
    "password_check": {"user": {"max": 10, "seconds": 900}}
  }'::jsonb
where attempt_limits = '{
    "authenticate": {"email": {"max": 10, "seconds": 900}, "address": {"max": 50, "seconds": 900}},
    "register": {"email": {"max": 5, "seconds": 3600}, "address": {"max": 50, "seconds": 3600}},
    "forgot_password": {"email": {"max": 5, "seconds": 3600}, "address": {"max": 20, "seconds": 3600}},
    "verify_email": {"email": {"max": 10, "seconds": 3600}, "address": {"max": 50, "seconds": 3600}},
    "reset_password": {"address": {"max": 20, "seconds": 3600}},
    "resend_verification_email": {"user": {"max": 5, "seconds": 3600}},
    "change_email": {"user": {"max": 5, "seconds": 3600}},
    "password_check": {"user": {"max": 10, "seconds": 900}}
  }'::jsonb;
