// Closes usage periods that have ended: totals to usage_periods, counters restarted, the plan's
// monthly allowance granted for the new period. Run from the crontab. Idempotent: a period is
// closed once (the counter row is locked and re-checked; the allowance is keyed by period).

import type { Task } from "graphile-worker";
import { runBatch } from "../batch.ts";

export const ROLLOVER_USAGE_PERIODS_TASK = "rollover_usage_periods";

export const rolloverUsagePeriods: Task = async (_payload, helpers) => {
  const { row } = await runBatch<{ n: number }>(helpers, "select app_private.rollover_due_usage_periods(500) as n");
  if (row.n > 0) helpers.logger.info(`${ROLLOVER_USAGE_PERIODS_TASK}: ${row.n} organization(s) rolled over`);
};
