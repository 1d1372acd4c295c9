// Records one notice (a grant_expiring credit alert, emailed to the admins) per grant expiring
// within CREDIT_EXPIRY_NOTICE_DAYS days (default 7) with credits left. Run daily from the
// crontab. Idempotent: a grant already noticed is never noticed again
// (db/functions/140-credit-controls/grant-expiry-notices.sql); each organization is handled on
// its own (workers/batch.ts).

import type { Task } from "graphile-worker";
import { creditAlertsConfig } from "../../core/config.ts";
import { runBatch } from "../batch.ts";

export const NOTICE_EXPIRING_CREDIT_GRANTS_TASK = "notice_expiring_credit_grants";

export const noticeExpiringCreditGrants: Task = async (_payload, helpers) => {
  const { expiryNoticeDays } = creditAlertsConfig();
  const { row } = await runBatch<{ n: number }>(helpers, "select app_private.notice_expiring_credit_grants($1, 500) as n", [expiryNoticeDays]);
  if (row.n > 0) helpers.logger.info(`${NOTICE_EXPIRING_CREDIT_GRANTS_TASK}: ${row.n} grant(s) noticed`);
};
