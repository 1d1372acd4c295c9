// Removes what is left of expired credit grants, one 'expire' ledger entry per grant. Run from
// the crontab. Idempotent: a grant with nothing left is skipped.

import type { Task } from "graphile-worker";

export const EXPIRE_CREDIT_GRANTS_TASK = "expire_credit_grants";

export const expireCreditGrants: Task = async (_payload, helpers) => {
  const { rows } = await helpers.withPgClient((client) => client.query("select app_private.expire_due_grants(500) as n"));
  if (rows[0].n > 0) helpers.logger.info(`${EXPIRE_CREDIT_GRANTS_TASK}: ${rows[0].n} grant(s) expired`);
};
