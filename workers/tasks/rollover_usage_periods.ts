// Closes usage periods that have ended: totals to usage_periods, counters restarted, the plan's
// monthly allowance granted for the new period. Run from the crontab. Idempotent: a period is
// closed once (the counter row is locked and re-checked; the allowance is keyed by period).

import type { Task } from "graphile-worker";

export const ROLLOVER_USAGE_PERIODS_TASK = "rollover_usage_periods";

export const rolloverUsagePeriods: Task = async (_payload, helpers) => {
  const { rows } = await helpers.withPgClient((client) => client.query("select app_private.rollover_due_usage_periods(500) as n"));
  if (rows[0].n > 0) helpers.logger.info(`${ROLLOVER_USAGE_PERIODS_TASK}: ${rows[0].n} organization(s) rolled over`);
};
