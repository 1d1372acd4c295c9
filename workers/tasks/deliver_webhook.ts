// One attempt of an outbound webhook delivery, queued by the outbox (app_private.emit_webhook_event)
// or by the previous attempt, in the endpoint's named queue webhooks:<endpoint id> (one request
// at a time per endpoint). Safe to run twice: a delivery that is no longer pending sends nothing.
// An organization with WEBHOOK_MAX_IN_FLIGHT_PER_ORGANIZATION requests already in flight (leases
// in the database, counted across every worker process) has the attempt put off a second, so one
// tenant's slow endpoints hold few worker slots anywhere.
//
// After a success the job goes on with the endpoint's next pending first attempts, oldest first,
// for up to DRAIN_MS (then leaves the rest to their own jobs): a job of a named queue that
// finishes frees the queue, but graphile-worker only looks for the queue's next job at its next
// poll (2 s), so one job per message would drain a backlog of 1,000 (a burst, a recovery) at one
// message per poll. Each message delivered here has its own job removed afterwards; a crash in
// between leaves that job, which then finds the delivery done and sends nothing.

import type { Task } from "graphile-worker";
import { outboundWebhooksConfig } from "../../core/config.ts";
import { attemptDelivery } from "../webhooks/deliver.ts";

export const DELIVER_WEBHOOK_TASK = "deliver_webhook";

/** How long one job keeps delivering an endpoint's backlog after its own message. */
export const DRAIN_MS = 5_000;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const deliverWebhook: Task = async (payload, helpers) => {
  const { organizationId, deliveryId } = (payload ?? {}) as { organizationId?: unknown; deliveryId?: unknown };
  if (typeof organizationId !== "string" || !UUID.test(organizationId) || typeof deliveryId !== "string" || !UUID.test(deliveryId)) {
    helpers.logger.error(`${DELIVER_WEBHOOK_TASK}: bad payload, dropped`);
    return;
  }
  const config = outboundWebhooksConfig();
  // the HTTP request runs between two short statements; no connection is held across it
  const query = <R>(sql: string, values: unknown[]) =>
    helpers.withPgClient(async (client) => (await client.query(sql, values)).rows as R[]);
  const started = Date.now();
  let outcome = await attemptDelivery(query, organizationId, deliveryId, config);
  helpers.logger.info(`${DELIVER_WEBHOOK_TASK}: delivery ${deliveryId}: ${outcome}`);
  let drained = 0;
  while (outcome === "succeeded" && Date.now() - started < DRAIN_MS) {
    const next = await query<{ id: string }>(
      `select d.id from app_public.webhook_deliveries d
       where d.organization_id = $1
         and d.endpoint_id = (select d0.endpoint_id from app_public.webhook_deliveries d0 where d0.organization_id = $1 and d0.id = $2)
         and d.status = 'pending' and d.attempt_count = 0 and d.next_attempt_at <= now() and d.id <> $2
       order by d.created_at, d.id
       limit 1`,
      [organizationId, deliveryId],
    );
    if (next.length === 0) break;
    outcome = await attemptDelivery(query, organizationId, next[0].id, config);
    helpers.logger.info(`${DELIVER_WEBHOOK_TASK}: delivery ${next[0].id}: ${outcome} (drained)`);
    // anything but a success leaves the delivery's job to it (a retry or a put-off attempt
    // replaced that job under the same key)
    if (outcome !== "succeeded") break;
    drained++;
    // its own job (not running: the queue is ours) has nothing left to do
    await query("select graphile_worker.remove_job($1)", [`webhook_delivery:${next[0].id}`]);
  }
  if (drained > 0) helpers.logger.info(`${DELIVER_WEBHOOK_TASK}: delivered ${drained} more of the endpoint's queue`);
};
