// One attempt of an outbound webhook delivery, queued by the outbox (app_private.emit_webhook_event)
// or by the previous attempt, in the endpoint's named queue webhooks:<endpoint id> (one request
// at a time per endpoint). Safe to run twice: a delivery that is no longer pending sends nothing.
// An organization with WEBHOOK_MAX_IN_FLIGHT_PER_ORGANIZATION requests already in flight in this
// worker has the attempt put off a second, so one tenant's slow endpoints hold few worker slots.

import type { Task } from "graphile-worker";
import { outboundWebhooksConfig } from "../../core/config.ts";
import { attemptDelivery } from "../webhooks/deliver.ts";

export const DELIVER_WEBHOOK_TASK = "deliver_webhook";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const inFlight = new Map<string, number>();

export const deliverWebhook: Task = async (payload, helpers) => {
  const { organizationId, deliveryId } = (payload ?? {}) as { organizationId?: unknown; deliveryId?: unknown };
  if (typeof organizationId !== "string" || !UUID.test(organizationId) || typeof deliveryId !== "string" || !UUID.test(deliveryId)) {
    helpers.logger.error(`${DELIVER_WEBHOOK_TASK}: bad payload, dropped`);
    return;
  }
  const config = outboundWebhooksConfig();
  const busy = inFlight.get(organizationId) ?? 0;
  if (busy >= config.maxInFlightPerOrganization) {
    await helpers.withPgClient((client) => client.query("select app_private.postpone_webhook_attempt($1, $2, 1000)", [organizationId, deliveryId]));
    return;
  }
  inFlight.set(organizationId, busy + 1);
  try {
    // the HTTP request runs between two short statements; no connection is held across it
    const query = <R>(sql: string, values: unknown[]) =>
      helpers.withPgClient(async (client) => (await client.query(sql, values)).rows as R[]);
    const outcome = await attemptDelivery(query, organizationId, deliveryId, config);
    helpers.logger.info(`${DELIVER_WEBHOOK_TASK}: delivery ${deliveryId}: ${outcome}`);
  } finally {
    const left = (inFlight.get(organizationId) ?? 1) - 1;
    if (left <= 0) inFlight.delete(organizationId);
    else inFlight.set(organizationId, left);
  }
};
