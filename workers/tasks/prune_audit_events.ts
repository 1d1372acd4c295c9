// Daily: deletes each organization's audit entries older than its
// features.auditLogRetentionDays setting (app_private.prune_audit_events). Idempotent.

import type { Task } from "graphile-worker";

export const PRUNE_AUDIT_EVENTS_TASK = "prune_audit_events";

export const pruneAuditEvents: Task = async (_payload, helpers) => {
  const { rows } = await helpers.withPgClient((client) => client.query("select app_private.prune_audit_events() as n"));
  helpers.logger.info(`${PRUNE_AUDIT_EVENTS_TASK}: ${rows[0].n} audit event(s) deleted`);
};
