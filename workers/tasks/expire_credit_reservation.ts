// Releases credit reservations that reached expires_at unsettled. Queued by reserve_credits for
// each reservation at its expires_at (job_key credits:expire-reservation:<id>) and run from the
// crontab without a payload as a sweep over every overdue reservation. Idempotent: a reservation
// captured, released or already expired is left alone.

import type { Task } from "graphile-worker";
import { runBatch } from "../batch.ts";

export const EXPIRE_CREDIT_RESERVATION_TASK = "expire_credit_reservation";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const expireCreditReservation: Task = async (payload, helpers) => {
  const { organizationId, reservationId } = (payload ?? {}) as { organizationId?: unknown; reservationId?: unknown };
  if (typeof organizationId === "string" && UUID.test(organizationId) && typeof reservationId === "string" && UUID.test(reservationId)) {
    const { rows } = await helpers.withPgClient((client) =>
      client.query("select app_private.expire_reservation($1, $2) as done", [organizationId, reservationId]),
    );
    if (rows[0].done) helpers.logger.info(`${EXPIRE_CREDIT_RESERVATION_TASK}: reservation ${reservationId} expired`);
    return;
  }
  const { row } = await runBatch<{ n: number }>(helpers, "select app_private.expire_due_reservations(500) as n");
  if (row.n > 0) helpers.logger.info(`${EXPIRE_CREDIT_RESERVATION_TASK}: ${row.n} overdue reservation(s) expired`);
};
