// POST /webhooks/stripe: signature checks, size limit (512 KB), idempotent storage, one job per event.
// Floods (refusal before reading, per-address limit): test/adversarial/stripe-webhook-flood.test.ts.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import {
  checkoutSessionObject,
  deliver,
  signedHeader,
  stripeConfigFor,
  stripeEvent,
  T0,
} from "../helpers/stripe.ts";

let db: TestDatabase;
let server: TestServer;
beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db, { stripe: stripeConfigFor(null) });
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

async function counts() {
  const { rows } = await db.owner.query(
    `select (select count(*)::int from app_private.stripe_events) as events,
            (select coalesce(sum(json_array_length(j.payload)), 0)::int from graphile_worker._private_jobs j
              where j.task_id = (select t.id from graphile_worker._private_tasks t where t.identifier = 'stripe_events')) as jobs`,
  );
  return rows[0] as { events: number; jobs: number };
}

function anEvent() {
  return stripeEvent("checkout.session.completed", checkoutSessionObject({ id: "cs_test_x", customer: "cus_x" }), T0);
}

test("a verified event is stored and queued for the worker (a stripe_events job naming it)", async () => {
  const before = await counts();
  const event = anEvent();
  const response = await deliver(server.url, event);
  expect(response).toEqual({ status: 200, body: { received: true, duplicate: false } });
  const { rows } = await db.owner.query("select * from app_private.stripe_events where id = $1", [event.id]);
  expect(rows).toHaveLength(1);
  expect(rows[0]).toMatchObject({
    type: "checkout.session.completed",
    processed_at: null,
    attempts: 0,
    payload: event,
  });
  expect(rows[0].stripe_created_at.getTime()).toBe(T0 * 1000);
  const jobs = await db.owner.query(
    `select j.key, j.payload from graphile_worker._private_jobs j
     join graphile_worker._private_tasks t on t.id = j.task_id
     where t.identifier = 'stripe_events' and j.payload::jsonb @> jsonb_build_array(jsonb_build_object('eventId', $1::text))`,
    [event.id],
  );
  expect(jobs.rows).toEqual([{ key: null, payload: [{ eventId: event.id }] }]);
  expect(await counts()).toEqual({ events: before.events + 1, jobs: before.jobs + 1 });
});

test("a duplicate delivery answers 2xx and queues nothing new, even when deliveries race", async () => {
  const event = anEvent();
  const first = await deliver(server.url, event);
  expect(first.status).toBe(200);
  const before = await counts();
  const responses = await Promise.all(Array.from({ length: 20 }, () => deliver(server.url, event)));
  expect(responses.map((r) => r.status)).toEqual(Array(20).fill(200));
  expect(responses.every((r) => r.body.duplicate === true)).toBe(true);
  expect(await counts()).toEqual(before);
});

test("concurrent first deliveries of one event store it once", async () => {
  const event = anEvent();
  const before = await counts();
  const responses = await Promise.all(Array.from({ length: 20 }, () => deliver(server.url, event)));
  expect(responses.map((r) => r.status)).toEqual(Array(20).fill(200));
  expect(responses.filter((r) => r.body.duplicate === false)).toHaveLength(1);
  expect(await counts()).toEqual({ events: before.events + 1, jobs: before.jobs + 1 });
});

describe("rejected deliveries store nothing", () => {
  test.each([
    ["a forged signature", (payload: string) => ({ signature: signedHeader(payload).replace(/v1=[0-9a-f]{4}/, "v1=0000") })],
    ["the wrong secret", () => ({ secret: "whsec_someoneelse0123456789" })],
    ["a stale timestamp (10 minutes old)", () => ({ timestamp: Math.floor(Date.now() / 1000) - 600 })],
    ["no signature header", () => ({ signature: null })],
    ["a signature for another body", () => ({ signature: signedHeader("{}") })],
  ])("%s → 400", async (_name, options) => {
    const before = await counts();
    const payload = JSON.stringify(anEvent());
    const response = await deliver(server.url, payload, options(payload) as any);
    expect(response.status).toBe(400);
    expect(await counts()).toEqual(before);
  });

  test("malformed JSON, correctly signed → 400", async () => {
    const before = await counts();
    const response = await deliver(server.url, '{"id": "evt_1", "type": ');
    expect(response.status).toBe(400);
    expect(await counts()).toEqual(before);
  });

  test("signed JSON that is not a Stripe event → 400", async () => {
    const before = await counts();
    for (const payload of ['{"hello": "world"}', "[1,2,3]", '"evt_1"', '{"id": "evt_1; drop table x", "type": "a", "created": 1}']) {
      const response = await deliver(server.url, payload);
      expect(response.status).toBe(400);
    }
    expect(await counts()).toEqual(before);
  });

  test("a body over 512 KB → 413", async () => {
    const before = await counts();
    const event = anEvent();
    event.data.object.metadata = { padding: "x".repeat(512 * 1024) };
    const response = await deliver(server.url, event);
    expect(response.status).toBe(413);
    expect(await counts()).toEqual(before);
  });

  test("a body just under 512 KB is accepted", async () => {
    const event = anEvent();
    event.data.object.metadata = { padding: "x".repeat(500 * 1000) };
    const response = await deliver(server.url, event);
    expect(response.status).toBe(200);
  });
});

test("without STRIPE_WEBHOOK_SECRET the endpoint answers 503 and stores nothing", async () => {
  const off = await startTestServer(db, {
    stripe: { ...stripeConfigFor(null), secretKey: null, webhookSecret: null },
  });
  try {
    const before = await counts();
    const response = await deliver(off.url, anEvent());
    expect(response.status).toBe(503);
    expect(await counts()).toEqual(before);
  } finally {
    await off.close();
  }
});

test("the server writes BILLING_GRACE_DAYS for SQL to read", async () => {
  const other = await startTestServer(db, { stripe: stripeConfigFor(null, { graceDays: 3 }) });
  try {
    const { rows } = await db.owner.query("select app_private.billing_grace_days() as days");
    expect(rows[0].days).toBe(3);
  } finally {
    await other.close();
    await db.owner.query("update app_private.billing_settings set grace_days = 7");
  }
});
