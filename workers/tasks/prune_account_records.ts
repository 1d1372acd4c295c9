// Daily: removes account tokens a week past their expiry and attempt counters whose window ended
// (app_private.prune_account_records, db/functions/020-accounts/account-tokens.sql). Safe to run twice.

import type { Task } from "graphile-worker";

export const PRUNE_ACCOUNT_RECORDS_TASK = "prune_account_records";

export const pruneAccountRecords: Task = async (_payload, helpers) => {
  const { rows } = await helpers.withPgClient((client) => client.query("select app_private.prune_account_records() as n"));
  helpers.logger.info(`${PRUNE_ACCOUNT_RECORDS_TASK}: ${rows[0].n} expired account records removed`);
};
