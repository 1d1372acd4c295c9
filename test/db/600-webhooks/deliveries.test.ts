// What record_webhook_attempt decides: a 2xx succeeds and clears failing_since; a failure with a
// retry queues the next attempt (lower priority: the endpoint is failing) at the time given; no
// retry left fails the delivery; 410 disables the endpoint at once; failing past disable_after
// disables it; each disabling queues one email job. A disabled endpoint's pending delivery
// fails when its job runs, without a request.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { twoTenants } from "../../helpers/fixtures.ts";
import { setPlan } from "../../helpers/team.ts";

let db: TestDatabase;
let t: Awaited<ReturnType<typeof twoTenants>>;
beforeAll(async () => {
  db = await createTestDatabase();
  t = await twoTenants(db);
  await setPlan(db, t.a.org.id, "enterprise");
});
afterAll(() => db?.drop());

async function delivery(url: string) {
  const endpoint = (await db.queryAs(t.a.admin, "select (r.webhook_endpoint).id from app_public.create_webhook_endpoint($1, $2, '', '{webhook.test}') r", [t.a.org.id, url])).rows[0].id;
  const sent = await db.queryAs(t.a.admin, "select id from app_public.send_test_webhook($1)", [endpoint]);
  return { endpoint, delivery: sent.rows[0].id as string };
}
const record = (id: string, status: number | null, retryMs: number | null, error: string | null = null) =>
  db.owner.query("select app_private.record_webhook_attempt($1, $2, $3, 12, 'body', $4, $5, interval '120 hours') as r", [t.a.org.id, id, status, error, retryMs]).then((r) => r.rows[0].r);
const state = async (endpoint: string, id: string) =>
  (
    await db.owner.query(
      `select d.status, d.attempt_count, e.disabled_reason, e.failing_since is not null as failing,
              (select count(*)::int from app_public.webhook_attempts a where a.delivery_id = d.id) as attempts
       from app_public.webhook_deliveries d join app_public.webhook_endpoints e on e.id = d.endpoint_id where d.id = $1 and e.id = $2`,
      [id, endpoint],
    )
  ).rows[0];

test("failure then success: retried at the given time in the endpoint's queue, then succeeded and healthy", async () => {
  const { endpoint, delivery: id } = await delivery("https://hooks.example.com/a");
  expect(await record(id, 500, 60_000)).toBe("retrying");
  expect(await state(endpoint, id)).toEqual({ status: "pending", attempt_count: 1, disabled_reason: null, failing: true, attempts: 1 });
  const job = await db.owner.query(
    "select queue_name, priority, run_at > now() + interval '50 seconds' as later from graphile_worker.jobs where key = $1",
    [`webhook_delivery:${id}`],
  );
  expect(job.rows).toEqual([{ queue_name: `webhooks:${endpoint}`, priority: 10, later: true }]);
  expect(await record(id, 200, null)).toBe("succeeded");
  expect(await state(endpoint, id)).toEqual({ status: "succeeded", attempt_count: 2, disabled_reason: null, failing: false, attempts: 2 });
});

test("no retry left: failed; the answer is cut to 4 KB and the error to 1,000 characters", async () => {
  const { endpoint, delivery: id } = await delivery("https://hooks.example.com/b");
  await db.owner.query("select app_private.record_webhook_attempt($1, $2, null, 15000, $3, $4, null, interval '120 hours')", [t.a.org.id, id, "x".repeat(10000), "e".repeat(5000)]);
  expect(await state(endpoint, id)).toMatchObject({ status: "failed", attempts: 1 });
  const attempt = await db.owner.query("select length(response_body) as body, length(error) as error from app_public.webhook_attempts where delivery_id = $1", [id]);
  expect(attempt.rows[0]).toEqual({ body: 4096, error: 1000 });
});

test("410 disables at once; failing for longer than disable_after disables; each queues the admins' email", async () => {
  const gone = await delivery("https://hooks.example.com/gone");
  expect(await record(gone.delivery, 410, 5000)).toBe("endpoint_disabled");
  expect(await state(gone.endpoint, gone.delivery)).toMatchObject({ status: "failed", disabled_reason: "gone" });
  const failing = await delivery("https://hooks.example.com/failing");
  await db.owner.query("update app_public.webhook_endpoints set failing_since = now() - interval '119 hours' where id = $1", [failing.endpoint]);
  expect(await record(failing.delivery, 500, 5000)).toBe("retrying");
  await db.owner.query("update app_public.webhook_endpoints set failing_since = now() - interval '121 hours' where id = $1", [failing.endpoint]);
  expect(await record(failing.delivery, null, 5000, "Connection failed: ECONNREFUSED")).toBe("endpoint_disabled");
  expect(await state(failing.endpoint, failing.delivery)).toMatchObject({ status: "failed", disabled_reason: "failing" });
  const mails = await db.owner.query("select key from graphile_worker.jobs where task_identifier = 'webhook_endpoint_disabled_email' order by key");
  expect(mails.rows.map((r) => r.key).sort()).toEqual([`webhook_endpoint_disabled_email:${gone.endpoint}`, `webhook_endpoint_disabled_email:${failing.endpoint}`].sort());
  const recipients = await db.owner.query("select email from app_private.webhook_endpoint_disabled_email($1, $2)", [t.a.org.id, gone.endpoint]);
  expect(recipients.rows).toHaveLength(2); // owner and admin, not the member
});

test("a disabled endpoint's pending delivery fails when its job runs, with nothing to send", async () => {
  const { endpoint, delivery: id } = await delivery("https://hooks.example.com/c");
  await db.queryAs(t.a.admin, "select app_public.disable_webhook_endpoint($1)", [endpoint]);
  expect((await db.owner.query("select * from app_private.webhook_delivery_to_send($1, $2, 2, interval '1 minute')", [t.a.org.id, id])).rows).toEqual([]);
  expect(await state(endpoint, id)).toMatchObject({ status: "failed", attempts: 0 });
  // postponing a finished delivery does nothing
  await db.owner.query("select app_private.postpone_webhook_attempt($1, $2, 1000)", [t.a.org.id, id]);
  expect(await state(endpoint, id)).toMatchObject({ status: "failed" });
});

test("what the worker reads: the signing secrets, the message, the URL and headers", async () => {
  const { endpoint, delivery: id } = await delivery("https://hooks.example.com/d");
  const { rows } = await db.owner.query("select * from app_private.webhook_delivery_to_send($1, $2, 2, interval '1 minute')", [t.a.org.id, id]);
  expect(rows[0]).toMatchObject({ busy: false, endpoint_id: endpoint, url: "https://hooks.example.com/d", event_type: "webhook.test", payload: { endpoint_id: endpoint }, attempt_count: 0 });
  expect(rows[0].secrets).toHaveLength(1);
  // another organization's id with this delivery: nothing
  expect((await db.owner.query("select * from app_private.webhook_delivery_to_send($1, $2, 2, interval '1 minute')", [t.b.org.id, id])).rows).toEqual([]);
});

test("leases bound an organization's requests in flight across workers: busy past max_in_flight, freed by the record or by expiry", async () => {
  await db.owner.query("delete from app_private.webhook_attempt_leases"); // (reads of the tests above)
  const one = await delivery("https://hooks.example.com/l1");
  const two = await delivery("https://hooks.example.com/l2");
  const three = await delivery("https://hooks.example.com/l3");
  const read = (id: string) =>
    db.owner.query("select busy from app_private.webhook_delivery_to_send($1, $2, 2, interval '1 minute')", [t.a.org.id, id]).then((r) => r.rows[0]?.busy);
  expect(await read(one.delivery)).toBe(false);
  expect(await read(two.delivery)).toBe(false);
  expect(await read(three.delivery)).toBe(true);
  // reading the same delivery again (a job run twice) renews its own lease, it does not take a second
  expect(await read(two.delivery)).toBe(false);
  await record(one.delivery, 200, null);
  expect(await read(three.delivery)).toBe(false);
  // a lease of a worker that died ends at expires_at
  await db.owner.query("update app_private.webhook_attempt_leases set expires_at = now() - interval '1 second' where delivery_id = $1", [two.delivery]);
  const four = await delivery("https://hooks.example.com/l4");
  expect(await read(four.delivery)).toBe(false);
  expect((await db.owner.query("select count(*)::int as n from app_private.webhook_attempt_leases where organization_id = $1", [t.a.org.id])).rows[0].n).toBe(2);
});
