// A burst of Stripe deliveries: concurrent deliveries are stored together (one statement, one
// commit: server/webhooks/intake-batcher.ts). Attacks on that: the same event many times inside
// one burst, and a signed event that passes the server's checks but that the database refuses,
// hidden among good ones. Each delivery must get its own true answer; the bad one must not fail
// (or lose) the others stored with it; nothing is stored or queued twice.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { checkoutSessionObject, deliver, stripeConfigFor, stripeEvent, T0 } from "../helpers/stripe.ts";

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

test("a burst with duplicates and one event the database refuses: every good event stored once, each answer true", async () => {
  const good = Array.from({ length: 40 }, (_, i) =>
    stripeEvent("checkout.session.completed", checkoutSessionObject({ id: `cs_test_burst${i}`, customer: "cus_burst" }), T0 + i));
  // Signed and shaped like an event, but livemode is not a boolean: the SQL cast fails.
  const bad = { ...stripeEvent("checkout.session.completed", checkoutSessionObject({ id: "cs_test_bad", customer: "cus_burst" }), T0), livemode: "maybe" };
  // Every good event three times, the bad one in the middle, all at once.
  const deliveries = [...good, ...good.slice(0, 20), bad as any, ...good.slice(20), ...good].map((event) =>
    deliver(server.url, event).then((r) => ({ id: event.id as string, ...r })));
  const answers = await Promise.all(deliveries);

  const badAnswers = answers.filter((a) => a.id === bad.id);
  expect(badAnswers.map((a) => a.status)).toEqual([500]);
  for (const event of good) {
    const mine = answers.filter((a) => a.id === event.id);
    expect(mine.map((a) => a.status)).toEqual([200, 200, 200]);
    // Exactly one delivery of each event was the one that stored it.
    expect(mine.filter((a) => a.body.duplicate === false)).toHaveLength(1);
  }
  const { rows } = await db.owner.query(
    `select (select count(*)::int from app_private.stripe_events) as events,
            (select coalesce(sum(json_array_length(j.payload)), 0)::int from graphile_worker._private_jobs j
              where j.task_id = (select t.id from graphile_worker._private_tasks t where t.identifier = 'stripe_events')) as jobs,
            (select count(*)::int from app_private.stripe_events where id = $1) as bad`,
    [bad.id],
  );
  expect(rows[0]).toEqual({ events: good.length, jobs: good.length, bad: 0 });
});
