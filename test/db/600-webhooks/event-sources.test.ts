// Each event source writes its message in the transaction of the change, with ids and facts and
// no secret: generations finishing, members joining / leaving / changing role, API keys created
// and revoked, the subscription changing, an invoice paid, credits granted. A rolled-back change
// writes nothing.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { addMember, createUser, twoTenants } from "../../helpers/fixtures.ts";
import { generationHelpers } from "../../helpers/generations.ts";
import { createApiKey, setPlan } from "../../helpers/team.ts";

let db: TestDatabase;
let t: Awaited<ReturnType<typeof twoTenants>>;
const gen = generationHelpers(() => db);
beforeAll(async () => {
  db = await createTestDatabase();
  t = await twoTenants(db);
  await setPlan(db, t.a.org.id, "enterprise");
  await setPlan(db, t.b.org.id, "enterprise");
  await db.queryAs(t.a.admin, "select app_public.create_webhook_endpoint($1, 'https://hooks.example.com/all')", [t.a.org.id]);
});
afterAll(() => db?.drop());

/** Messages written since the last call, oldest first. */
let seen = 0;
async function newMessages() {
  const { rows } = await db.owner.query(
    "select event_type, payload from app_public.webhook_messages where organization_id = $1 order by created_at, id offset $2",
    [t.a.org.id, seen],
  );
  seen += rows.length;
  return rows;
}

test("members joining, changing role and leaving", async () => {
  await newMessages();
  const user = await createUser(db);
  await addMember(db, t.a.org.id, user);
  await db.queryAs(t.a.owner, "select app_public.change_member_role($1, $2, 'admin')", [t.a.org.id, user.userId]);
  await db.owner.query("update app_public.organization_members set updated_at = now() where user_id = $1", [user.userId]);
  await db.queryAs(t.a.owner, "select app_public.remove_member($1, $2)", [t.a.org.id, user.userId]);
  expect(await newMessages()).toEqual([
    { event_type: "member.joined", payload: { user_id: user.userId, role: "member" } },
    { event_type: "member.role_changed", payload: { user_id: user.userId, old_role: "member", new_role: "admin" } },
    { event_type: "member.left", payload: { user_id: user.userId } },
  ]);
});

test("API keys created and revoked: ids and names, never the secret", async () => {
  await newMessages();
  const key = await createApiKey(db, t.a.admin, t.a.org.id, "backend", "member");
  await db.queryAs(t.a.admin, "select app_public.revoke_api_key($1)", [key.id]);
  const messages = await newMessages();
  expect(messages).toEqual([
    { event_type: "api_key.created", payload: { api_key_id: key.id, name: "backend", role: "member", expires_at: null } },
    { event_type: "api_key.revoked", payload: { api_key_id: key.id, name: "backend" } },
  ]);
  expect(JSON.stringify(messages)).not.toContain("tb_live_");
});

test("generations completed and failed; credits granted", async () => {
  await newMessages();
  const project = await gen.project(t.a.member, t.a.org.id);
  const g1 = await gen.start(t.a.member, t.a.org.id, project, 5, "wh-1");
  await gen.complete(t.a.member, g1.id, 3);
  const g2 = await gen.start(t.a.member, t.a.org.id, project, 5, "wh-2");
  await gen.fail(t.a.member, g2.id, "provider timeout");
  const messages = await newMessages();
  expect(messages.map((m) => m.event_type)).toEqual(["generation.completed", "generation.failed"]);
  expect(messages[0].payload).toMatchObject({ generation_id: g1.id, project_id: project, kind: "image", model: "flux-1", credits_charged: 3 });
  expect(messages[1].payload).toMatchObject({ generation_id: g2.id, error: "provider timeout" });
  await db.owner.query("select app_private.grant_credits_from($1, 50, 'manual', null, null, null)", [t.a.org.id]);
  const granted = await newMessages();
  expect(granted).toEqual([{ event_type: "credits.granted", payload: expect.objectContaining({ source: "manual", amount: 50, expires_at: null }) }]);
});

test("times in a payload are UTC whatever the session's TimeZone", async () => {
  await newMessages();
  const client = await db.owner.connect();
  try {
    await client.query("set timezone = 'America/New_York'");
    await client.query("select app_private.grant_credits_from($1, 50, 'manual', '2030-01-08T00:00:00Z', null, null)", [t.a.org.id]);
  } finally {
    await client.query("reset timezone");
    client.release();
  }
  expect(await newMessages()).toEqual([
    { event_type: "credits.granted", payload: expect.objectContaining({ amount: 50, expires_at: "2030-01-08T00:00:00+00:00" }) },
  ]);
});

test("every function that emits an event runs with TimeZone UTC", async () => {
  const { rows } = await db.owner.query(`
    select p.oid::regprocedure::text as name, coalesce('TimeZone=UTC' = any (p.proconfig), false) as utc
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname like 'app\\_%' and p.prosrc like '%emit_webhook_event(%' and p.proname <> 'emit_webhook_event'`);
  expect(rows.length).toBeGreaterThanOrEqual(8);
  expect(rows.filter((r) => !r.utc).map((r) => r.name)).toEqual([]);
});

test("the subscription changing and an invoice paid", async () => {
  await newMessages();
  await db.owner.query(
    `insert into app_public.subscriptions (organization_id, stripe_customer_id, stripe_subscription_id, status, plan_id,
       stripe_created_at, last_event_created_at, last_event_rank, last_event_id)
     values ($1, 'cus_wh', 'sub_wh', 'active', 'pro', now(), now(), 0, 'evt_wh')`,
    [t.a.org.id],
  );
  await db.owner.query("update app_public.subscriptions set last_event_id = 'evt_wh2' where organization_id = $1", [t.a.org.id]);
  await db.owner.query("update app_public.subscriptions set cancel_at_period_end = true where organization_id = $1", [t.a.org.id]);
  await db.owner.query(
    `insert into app_public.invoices (organization_id, kind, stripe_invoice_id, status, currency, amount_due, amount_paid,
       last_event_created_at, last_event_rank, last_event_id)
     values ($1, 'subscription', 'in_wh', 'open', 'usd', 900, 0, now(), 0, 'evt_in')`,
    [t.a.org.id],
  );
  await db.owner.query("update app_public.invoices set status = 'paid', amount_paid = 900, paid_at = now() where stripe_invoice_id = 'in_wh'");
  await db.owner.query("update app_public.invoices set last_event_id = 'evt_in2' where stripe_invoice_id = 'in_wh'");
  const messages = await newMessages();
  expect(messages.map((m) => [m.event_type, m.payload.cancel_at_period_end ?? m.payload.amount_paid])).toEqual([
    ["subscription.updated", false],
    ["subscription.updated", true],
    ["invoice.paid", 900],
  ]);
});

test("a rolled-back change writes no message and queues no job; an organization without endpoints keeps none", async () => {
  await newMessages();
  const user = await createUser(db);
  const client = await db.owner.connect();
  try {
    await client.query("begin");
    await client.query("insert into app_public.organization_members (organization_id, user_id) values ($1, $2)", [t.a.org.id, user.userId]);
    expect((await client.query("select count(*)::int as n from app_public.webhook_messages where organization_id = $1", [t.a.org.id])).rows[0].n).toBe(seen + 1);
    await client.query("rollback");
  } finally {
    client.release();
  }
  expect(await newMessages()).toEqual([]);
  expect((await db.owner.query("select count(*)::int as n from graphile_worker._private_jobs where payload::text like $1", [`%${user.userId}%`])).rows[0].n).toBe(0);
  await addMember(db, t.b.org.id, user);
  expect((await db.owner.query("select count(*)::int as n from app_public.webhook_messages where organization_id = $1", [t.b.org.id])).rows[0].n).toBe(0);
});

test("deleting an organization with endpoints writes nothing and fails nothing", async () => {
  const owner = await createUser(db);
  const { rows } = await db.queryAs(owner, "select id from app_public.create_organization('Doomed')");
  await db.queryAs(owner, "select app_public.create_webhook_endpoint($1, 'https://hooks.example.com/doomed')", [rows[0].id]);
  await db.queryAs(owner, "select app_public.delete_organization($1)", [rows[0].id]);
  await db.owner.query("update app_public.organizations set deleted_at = now() - interval '400 days' where id = $1", [rows[0].id]);
  expect((await db.owner.query("select app_private.hard_delete_organizations() as n")).rows[0].n).toBeGreaterThanOrEqual(1);
  expect((await db.owner.query("select count(*)::int as n from app_public.webhook_messages where organization_id = $1", [rows[0].id])).rows[0].n).toBe(0);
});
