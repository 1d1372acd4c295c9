// Marks pending invitations past expires_at as expired: queued for each invitation at its
// expires_at (job_key invitation_expiry:<id>, moved by a resend, removed by accept/revoke) and
// run every 15 minutes from the crontab as a sweep. Idempotent.

import type { Task } from "graphile-worker";
import { runBatch } from "../batch.ts";

export const EXPIRE_INVITATIONS_TASK = "expire_invitations";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const expireInvitations: Task = async (payload, helpers) => {
  const invitationId = (payload as { invitationId?: unknown } | null)?.invitationId;
  const one = typeof invitationId === "string" && UUID.test(invitationId) ? invitationId : null;
  const { row } = await runBatch<{ n: number }>(helpers, "select app_private.expire_invitations($1) as n", [one]);
  if (row.n > 0) helpers.logger.info(`${EXPIRE_INVITATIONS_TASK}: ${row.n} invitation(s) expired`);
};
