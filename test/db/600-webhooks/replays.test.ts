// Sending again, at the SQL level: replay re-queues a finished delivery of the same message (a
// pending one is left alone); recovery covers what the endpoint never got, within 30 days, only
// the types it wants; the test event goes to one endpoint and is bounded per hour; members and
// other organizations may do none of it.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { twoTenants } from "../../helpers/fixtures.ts";
import { codeOf } from "../../helpers/codes.ts";

let db: TestDatabase;
let t: Awaited<ReturnType<typeof twoTenants>>;
let endpoint: string;
beforeAll(async () => {
  db = await createTestDatabase();
  t = await twoTenants(db);
  endpoint = (await db.queryAs(t.a.admin, "select (r.webhook_endpoint).id from app_public.create_webhook_endpoint($1, 'https://hooks.example.com/r', '', '{member.left}') r", [t.a.org.id])).rows[0].id;
});
afterAll(() => db?.drop());

const emit = (type: string) =>
  db.owner.query("select app_private.emit_webhook_event($1, $2, '{\"user_id\": \"u\"}') as id", [t.a.org.id, type]).then((r) => r.rows[0].id as string);

test("replay: only finished deliveries, to enabled endpoints, admins only", async () => {
  const message = await emit("member.left");
  expect((await db.queryAs(t.a.admin, "select app_public.replay_webhook_message($1) as n", [message])).rows[0].n).toBe(0); // still pending
  await db.owner.query("update app_public.webhook_deliveries set status = 'succeeded', attempt_count = 1 where message_id = $1", [message]);
  expect((await db.queryAs(t.a.admin, "select app_public.replay_webhook_message($1) as n", [message])).rows[0].n).toBe(1);
  expect((await db.owner.query("select status, attempt_count from app_public.webhook_deliveries where message_id = $1", [message])).rows).toEqual([{ status: "pending", attempt_count: 0 }]);
  expect(await codeOf(db.queryAs(t.a.member, "select app_public.replay_webhook_message($1)", [message]))).toBe("FORBIDDEN");
  expect(await codeOf(db.queryAs(t.b.owner, "select app_public.replay_webhook_message($1)", [message]))).toBe("NOT_FOUND");
});

test("recovery: messages since a time within 30 days that the endpoint wants and has not received", async () => {
  const since = (await db.owner.query("select now() as now")).rows[0].now;
  await db.queryAs(t.a.admin, "select app_public.disable_webhook_endpoint($1)", [endpoint]);
  const missed = await emit("member.left");
  await emit("member.joined"); // not wanted
  expect(await codeOf(db.queryAs(t.a.admin, "select app_public.recover_webhook_endpoint($1, $2)", [endpoint, since]))).toBe("WEBHOOK_ENDPOINT_DISABLED");
  await db.queryAs(t.a.admin, "select app_public.enable_webhook_endpoint($1)", [endpoint]);
  expect(await codeOf(db.queryAs(t.a.admin, "select app_public.recover_webhook_endpoint($1, now() - interval '31 days')", [endpoint]))).toBe("INVALID_INPUT");
  expect(await codeOf(db.queryAs(t.a.member, "select app_public.recover_webhook_endpoint($1, $2)", [endpoint, since]))).toBe("FORBIDDEN");
  expect(await codeOf(db.queryAs(t.b.admin, "select app_public.recover_webhook_endpoint($1, $2)", [endpoint, since]))).toBe("NOT_FOUND");
  expect((await db.queryAs(t.a.admin, "select app_public.recover_webhook_endpoint($1, $2) as n", [endpoint, since])).rows[0].n).toBe(1);
  expect((await db.owner.query("select status from app_public.webhook_deliveries where message_id = $1", [missed])).rows).toEqual([{ status: "pending" }]);
  expect((await db.queryAs(t.a.admin, "select app_public.recover_webhook_endpoint($1, $2) as n", [endpoint, since])).rows[0].n).toBe(0);
});

test("the test event goes to the one endpoint, whatever it subscribes to; 60 an hour per organization", async () => {
  const other = (await db.queryAs(t.a.admin, "select (r.webhook_endpoint).id from app_public.create_webhook_endpoint($1, 'https://hooks.example.com/o') r", [t.a.org.id])).rows[0].id;
  const sent = await db.queryAs(t.a.admin, "select endpoint_id, status from app_public.send_test_webhook($1)", [endpoint]);
  expect(sent.rows).toEqual([{ endpoint_id: endpoint, status: "pending" }]);
  const deliveries = await db.owner.query(
    "select d.endpoint_id from app_public.webhook_deliveries d join app_public.webhook_messages m on m.id = d.message_id where m.event_type = 'webhook.test'",
  );
  expect(deliveries.rows.map((r) => r.endpoint_id)).toEqual([endpoint]);
  expect(await codeOf(db.queryAs(t.a.member, "select app_public.send_test_webhook($1)", [endpoint]))).toBe("FORBIDDEN");
  let code: string | null = null;
  for (let i = 0; i < 70 && code === null; i++) code = await codeOf(db.queryAs(t.a.admin, "select app_public.send_test_webhook($1)", [other]));
  expect(code).toBe("QUOTA_EXCEEDED");
});

test("enabling with recover sends what the endpoint missed since it started failing or was disabled", async () => {
  const ep = (await db.queryAs(t.a.admin, "select (r.webhook_endpoint).id from app_public.create_webhook_endpoint($1, 'https://hooks.example.com/e', '', '{member.joined}') r", [t.a.org.id])).rows[0].id;
  await db.owner.query("update app_public.webhook_endpoints set failing_since = now() where id = $1", [ep]);
  const failed = await emit("member.joined");
  await db.owner.query("update app_public.webhook_deliveries set status = 'failed' where message_id = $1", [failed]);
  await db.queryAs(t.a.admin, "select app_public.disable_webhook_endpoint($1)", [ep]);
  const missed = await emit("member.joined");
  const enabled = await db.queryAs(t.a.admin, "select disabled_at, failing_since from app_public.enable_webhook_endpoint($1, recover => true)", [ep]);
  expect(enabled.rows).toEqual([{ disabled_at: null, failing_since: null }]);
  const pending = await db.owner.query("select message_id from app_public.webhook_deliveries where endpoint_id = $1 and status = 'pending' order by created_at", [ep]);
  expect(pending.rows.map((r) => r.message_id).sort()).toEqual([failed, missed].sort());
});
