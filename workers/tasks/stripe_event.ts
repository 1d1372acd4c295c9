// Applies one stored Stripe event: jobs queued by servers of the previous release (one per event,
// job_key = event id) and by an operator re-queuing one event by hand. New deliveries are queued
// in batches (stripe_events.ts). The logic is app_private.process_stripe_event
// (db/functions/300-billing/stripe-events.sql), which is idempotent, so retries and duplicate
// runs are harmless. A failure is written to the event row (attempts, last_error) outside the
// rolled-back transaction and thrown, so graphile-worker retries with exponential backoff; after
// the last attempt the event stays unprocessed with its error, for an operator (see
// docs/billing.md, "Operating").

import type { Task } from "graphile-worker";
import { processStripeEvents } from "./stripe_events.ts";

export const STRIPE_EVENT_TASK = "stripe_event";

const EVENT_ID = /^evt_[A-Za-z0-9_]+$/;

export const stripeEvent: Task = async (payload, helpers) => {
  const eventId = (payload as { eventId?: unknown } | null)?.eventId;
  if (typeof eventId !== "string" || !EVENT_ID.test(eventId)) {
    // A malformed job can never succeed: log and drop it rather than retry for days.
    helpers.logger.error(`stripe_event: bad payload ${JSON.stringify(payload)}`);
    return;
  }
  // The same procedure as a batch (stripe_events.ts): it counts the attempt and records a failure.
  const [result] = await processStripeEvents(helpers.withPgClient, [eventId]);
  if (result.error) throw new Error(result.error);
  helpers.logger.debug(`stripe_event ${eventId}: ${result.outcome}`);
};
