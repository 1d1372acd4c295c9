// Settings the billing SQL reads that come from the environment: BILLING_GRACE_DAYS, how long a
// past_due subscription keeps its plan (app_private.billing_grace_days() in
// db/functions/300-billing/effective-plan.sql). Written at start-up by every server, so the
// database follows the configuration that is deployed.

import type pg from "pg";
import type { StripeConfig } from "../core/stripe-config.ts";

export async function writeBillingSettings(pool: pg.Pool, config: Pick<StripeConfig, "graceDays">): Promise<void> {
  await pool.query(
    `insert into app_private.billing_settings (id, grace_days) values (true, $1)
     on conflict (id) do update set grace_days = excluded.grace_days
     where billing_settings.grace_days is distinct from excluded.grace_days`,
    [config.graceDays],
  );
}
