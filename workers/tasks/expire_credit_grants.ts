// Removes what is left of expired credit grants, one 'expire' ledger entry per grant. Run from
// the crontab. Idempotent: a grant with nothing left is skipped.

import type { Task } from "graphile-worker";
import { runBatch } from "../batch.ts";

export const EXPIRE_CREDIT_GRANTS_TASK = "expire_credit_grants";

export const expireCreditGrants: Task = async (_payload, helpers) => {
  const { row } = await runBatch<{ n: number }>(helpers, "select app_private.expire_due_grants(500) as n");
  if (row.n > 0) helpers.logger.info(`${EXPIRE_CREDIT_GRANTS_TASK}: ${row.n} grant(s) expired`);
};
