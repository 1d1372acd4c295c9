// Applies the stored Stripe events of one webhook intake batch (queued by
// app_private.receive_stripe_events: one job per batch of deliveries, its payload
// [{"eventId": …}, …]). One round trip for the batch (and for other Stripe jobs running at the
// same time, see stripeEventQueue): app_private.process_stripe_events applies
// each event in a transaction of its own, counts the attempt and records a failure on the
// event row. A graphile-worker "batch job": the task answers per entry, and graphile-worker
// retries only the entries that failed, with its exponential backoff; after the last attempt
// they stay unprocessed with their error, for an operator (see docs/billing.md, "Operating").

import type { Task } from "graphile-worker";
import { CoalescingQueue } from "../../core/coalescing-queue.ts";

export const STRIPE_EVENTS_TASK = "stripe_events";

const EVENT_ID = /^evt_[A-Za-z0-9_]+$/;

function eventIdOf(entry: unknown): string | null {
  const eventId = (entry as { eventId?: unknown } | null)?.eventId;
  return typeof eventId === "string" && EVENT_ID.test(eventId) ? eventId : null;
}

type WithPgClient = Parameters<Task>[1]["withPgClient"];
export interface StripeEventResult {
  outcome: string | null;
  error: string | null;
}

// The Stripe jobs a worker runs at the same time share one call (core/coalescing-queue.ts):
// while a call runs, the event ids of jobs that start wait and go together in the next one (up to
// 500 events). So a worker applies events one stream at a time, whatever its concurrency (more
// workers, more streams), and on a small machine the events a burst of deliveries queued cannot
// take the CPU the intake needs to answer them; jobs of one event each (the backlog of an old
// release, hand-queued ones) still share calls. A failed call fails every job in it.
function stripeEventQueue(withPgClient: WithPgClient) {
  return new CoalescingQueue<string[], StripeEventResult[]>(
    async (jobs) => {
      const ids = jobs.flat();
      const { rows } = await withPgClient((client) =>
        client.query("call app_private.process_stripe_events($1::text[], null, null)", [ids]),
      );
      const { outcomes, errors } = rows[0] as { outcomes: (string | null)[]; errors: (string | null)[] };
      let i = 0;
      return jobs.map((jobIds) => ({ ok: true, value: jobIds.map(() => ({ outcome: outcomes[i] ?? null, error: errors[i++] ?? null })) }));
    },
    { maxBatch: 500, sizeOf: (jobIds) => jobIds.length },
  );
}

// One per worker pool (each has its own withPgClient), so tests running several do not mix.
const queues = new WeakMap<WithPgClient, ReturnType<typeof stripeEventQueue>>();

/** Applies the events; resolves with one outcome, or error message, per id, in order. */
export function processStripeEvents(withPgClient: WithPgClient, eventIds: string[]): Promise<StripeEventResult[]> {
  if (eventIds.length === 0) return Promise.resolve([]);
  let queue = queues.get(withPgClient);
  if (!queue) queues.set(withPgClient, (queue = stripeEventQueue(withPgClient)));
  return queue.push(eventIds);
}

export const stripeEvents: Task = async (payload, helpers) => {
  if (!Array.isArray(payload)) {
    // A malformed job can never succeed: log and drop it rather than retry for days.
    helpers.logger.error(`stripe_events: payload is not an array: ${JSON.stringify(payload)}`);
    return;
  }
  const ids = payload.map(eventIdOf);
  for (const [i, id] of ids.entries()) {
    if (id === null) helpers.logger.error(`stripe_events: bad entry dropped: ${JSON.stringify(payload[i])}`);
  }
  const valid = ids.filter((id): id is string => id !== null);
  const results = new Map((await processStripeEvents(helpers.withPgClient, valid)).map((r, i) => [valid[i], r]));
  // One settled promise per entry: the rejected ones are retried (graphile-worker batch jobs).
  return ids.map((id) => {
    const result = id === null ? null : results.get(id)!;
    if (result?.error) return Promise.reject(new Error(`${id}: ${result.error}`));
    if (result) helpers.logger.debug(`stripe_events ${id}: ${result.outcome}`);
    return Promise.resolve(result?.outcome ?? null);
  });
};
