// The outbox: emit_webhook_event writes the message and one delivery (with its job in the
// endpoint's named queue) per enabled endpoint that wants the type; disabled endpoints and other
// organizations' endpoints get nothing; pruning drops messages past 30 days with their log.

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

const make = async (actor: any, org: string, url: string, types: string[]) =>
  (await db.queryAs(actor, "select (r.webhook_endpoint).id from app_public.create_webhook_endpoint($1, $2, '', $3) r", [org, url, types])).rows[0].id as string;

test("one delivery and one job per enabled endpoint that wants the type; none for others", async () => {
  const all = await make(t.a.admin, t.a.org.id, "https://hooks.example.com/all", []);
  const wants = await make(t.a.admin, t.a.org.id, "https://hooks.example.com/wants", ["credits.low_balance"]);
  await make(t.a.admin, t.a.org.id, "https://hooks.example.com/other", ["member.joined"]);
  const off = await make(t.a.admin, t.a.org.id, "https://hooks.example.com/off", []);
  await db.queryAs(t.a.admin, "select app_public.disable_webhook_endpoint($1)", [off]);
  const bEndpoint = await make(t.b.admin, t.b.org.id, "https://hooks.example.com/b", []);

  const { rows } = await db.owner.query("select app_private.emit_webhook_event($1, 'credits.low_balance', '{\"balance\": 5, \"threshold\": 10}') as id", [t.a.org.id]);
  const messageId = rows[0].id;
  const deliveries = await db.owner.query("select endpoint_id, status, attempt_count from app_public.webhook_deliveries where message_id = $1 order by endpoint_id", [messageId]);
  expect(deliveries.rows.map((d) => d.endpoint_id).sort()).toEqual([all, wants].sort());
  expect(deliveries.rows.every((d) => d.status === "pending" && d.attempt_count === 0)).toBe(true);
  const jobs = await db.owner.query(
    "select queue_name, priority from graphile_worker.jobs where task_identifier = 'deliver_webhook' order by queue_name",
  );
  expect(jobs.rows).toEqual([all, wants].sort().map((id) => ({ queue_name: `webhooks:${id}`, priority: 0 })));
  expect((await db.owner.query("select count(*)::int as n from app_public.webhook_deliveries where endpoint_id = $1", [bEndpoint])).rows[0].n).toBe(0);
  // members read the message; the other organization does not
  expect((await db.queryAs(t.a.member, "select payload from app_public.webhook_messages where id = $1", [messageId])).rows).toEqual([{ payload: { balance: 5, threshold: 10 } }]);
  expect((await db.queryAs(t.b.owner, "select * from app_public.webhook_messages where id = $1", [messageId])).rows).toEqual([]);
  // app roles cannot write messages or call the emitter
  await expect(db.queryAs(t.a.owner, "select app_private.emit_webhook_event($1, 'webhook.test', '{}')", [t.a.org.id])).rejects.toThrow(/permission denied/);
  await expect(db.queryAs(t.a.owner, "insert into app_public.webhook_messages (organization_id, event_type, payload) values ($1, 'x', '{}')", [t.a.org.id])).rejects.toThrow(/permission denied/);
});

test("payloads are objects of at most 64 KB", async () => {
  await expect(db.owner.query("select app_private.emit_webhook_event($1, 'webhook.test', '[1]')", [t.a.org.id])).rejects.toThrow(/JSON object/);
  await expect(db.owner.query("select app_private.emit_webhook_event($1, 'webhook.test', $2)", [t.a.org.id, JSON.stringify({ x: "y".repeat(70000) })])).rejects.toThrow(/64 KB/);
});

test("pruning drops messages older than 30 days with their deliveries and attempts", async () => {
  const { rows } = await db.owner.query("select app_private.emit_webhook_event($1, 'member.left', '{\"user_id\": \"u\"}') as id", [t.a.org.id]);
  // (the audit trigger keeps created_at: age the row as the superuser, triggers off)
  await db.root.query(
    `begin; set local session_replication_role = replica;
     update app_public.webhook_messages set created_at = now() - interval '31 days' where id = '${rows[0].id}'; commit`,
  );
  expect((await db.owner.query("select app_private.prune_webhook_messages() as n")).rows[0].n).toBe(1);
  expect((await db.owner.query("select count(*)::int as n from app_public.webhook_deliveries where message_id = $1", [rows[0].id])).rows[0].n).toBe(0);
  expect((await db.owner.query("select app_private.prune_webhook_messages() as n")).rows[0].n).toBe(0);
});
