// Daily: deletes each organization's audit entries older than its
// features.auditLogRetentionDays setting (app_private.prune_audit_events). Idempotent.

import type { Task } from "graphile-worker";
import { runBatch } from "../batch.ts";

export const PRUNE_AUDIT_EVENTS_TASK = "prune_audit_events";

export const pruneAuditEvents: Task = async (_payload, helpers) => {
  const { row } = await runBatch<{ n: string }>(helpers, "select app_private.prune_audit_events() as n");
  helpers.logger.info(`${PRUNE_AUDIT_EVENTS_TASK}: ${row.n} audit event(s) deleted`);
};
