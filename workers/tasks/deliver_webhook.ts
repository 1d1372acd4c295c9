// One attempt of an outbound webhook delivery, queued by the outbox (app_private.emit_webhook_event)
// or by the previous attempt, in the endpoint's named queue webhooks:<endpoint id> (one request
// at a time per endpoint). Safe to run twice: a delivery that is no longer pending sends nothing.
// An organization with WEBHOOK_MAX_IN_FLIGHT_PER_ORGANIZATION requests already in flight (leases
// in the database, counted across every worker process) has the attempt put off a second, so one
// tenant's slow endpoints hold few worker slots anywhere.

import type { Task } from "graphile-worker";
import { outboundWebhooksConfig } from "../../core/config.ts";
import { attemptDelivery } from "../webhooks/deliver.ts";

export const DELIVER_WEBHOOK_TASK = "deliver_webhook";

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
  const outcome = await attemptDelivery(query, organizationId, deliveryId, config);
  helpers.logger.info(`${DELIVER_WEBHOOK_TASK}: delivery ${deliveryId}: ${outcome}`);
};
