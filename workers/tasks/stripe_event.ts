// Applies one stored Stripe event (queued by POST /webhooks/stripe with job_key = event id).
// The logic is app_private.process_stripe_event (db/migrations/committed/000005-stripe-billing.sql), which
// is idempotent, so retries and duplicate runs are harmless. A failure is written to the event
// row (attempts, last_error) outside the rolled-back transaction and rethrown, so
// graphile-worker retries with exponential backoff; after the last attempt the event stays
// unprocessed with its error, for an operator (see README, "Billing").

import type { Task } from "graphile-worker";

export const STRIPE_EVENT_TASK = "stripe_event";

const EVENT_ID = /^evt_[A-Za-z0-9_]+$/;

export const stripeEvent: Task = async (payload, helpers) => {
  const eventId = (payload as { eventId?: unknown } | null)?.eventId;
  if (typeof eventId !== "string" || !EVENT_ID.test(eventId)) {
    // A malformed job can never succeed: log and drop it rather than retry for days.
    helpers.logger.error(`stripe_event: bad payload ${JSON.stringify(payload)}`);
    return;
  }
  try {
    // One statement, so one round trip and one implicit transaction: the attempt is counted
    // (the function in FROM runs first) and the event applied together, or neither.
    const outcome = await helpers.withPgClient(async (client) => {
      const { rows } = await client.query(
        "select app_private.process_stripe_event($1) as outcome from app_private.record_stripe_event_attempt($1, null)",
        [eventId],
      );
      return rows[0].outcome as string;
    });
    helpers.logger.debug(`stripe_event ${eventId}: ${outcome}`);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    await helpers
      .withPgClient((client) => client.query("select app_private.record_stripe_event_attempt($1, $2)", [eventId, message]))
      .catch(() => {});
    throw error;
  }
};
