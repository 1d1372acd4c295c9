// Who may follow an organization's events, asked as the subscriber: members (users with a live
// session, live API keys of that organization) get the channel; others NOT_FOUND; a logged-out
// session or a revoked key is 'session_ended'; a removed member 'not_member'.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { twoTenants } from "../../helpers/fixtures.ts";
import { withSettings } from "../../../db/transaction.ts";

let db: TestDatabase;
let tenants: Awaited<ReturnType<typeof twoTenants>>;
beforeAll(async () => {
  db = await createTestDatabase();
  tenants = await twoTenants(db);
});
afterAll(() => db?.drop());

const status = (actor: Parameters<TestDatabase["queryAs"]>[0], org: string) =>
  db.queryAs(actor, "select app_hidden.realtime_subscriber_status($1) as s", [org]).then((r) => r.rows[0].s);
const subscribe = (actor: Parameters<TestDatabase["queryAs"]>[0], kind: string, org: string, project: string | null = null) =>
  db.queryAs(actor, "select app_hidden.realtime_subscribe($1, $2, $3) as channel", [kind, org, project]).then((r) => r.rows[0].channel);

test("members subscribe to their organization; another tenant gets NOT_FOUND", async () => {
  const { a, b } = tenants;
  for (const user of [a.owner, a.admin, a.member]) {
    expect(await status(user, a.org.id)).toBe("ok");
    expect(await subscribe(user, "generations", a.org.id)).toBe(`tb:generations:${a.org.id}`);
  }
  expect(await status(b.owner, a.org.id)).toBe("not_member");
  await expect(subscribe(b.owner, "credits", a.org.id)).rejects.toMatchObject({ detail: "NOT_FOUND" });
  await expect(subscribe(b.owner, "credits", "00000000-0000-7000-8000-000000000000")).rejects.toMatchObject({ detail: "NOT_FOUND" });
});

test("a project filter must name a project the caller can see in that organization", async () => {
  const { a, b } = tenants;
  const { rows } = await db.queryAs(a.member, "insert into app_public.projects (organization_id, name) values ($1, 'P') returning id", [a.org.id]);
  expect(await subscribe(a.member, "generations", a.org.id, rows[0].id)).toBe(`tb:generations:${a.org.id}`);
  await expect(subscribe(b.owner, "generations", b.org.id, rows[0].id)).rejects.toMatchObject({ detail: "NOT_FOUND" });
});

test("anonymous callers may not ask at all; a logged-out session has ended", async () => {
  await expect(db.queryAs(null, "select app_hidden.realtime_subscriber_status($1)", [tenants.a.org.id])).rejects.toMatchObject({ code: "42501" });
  const { a } = tenants;
  const user = { userId: a.member.userId, sessionId: a.member.sessionId };
  await db.owner.query("update app_private.sessions set revoked_at = now() where id = $1", [user.sessionId]);
  try {
    // The request's own start refuses an ended session before anything else runs
    // (app_hidden.start_request, 010-foundation/request.sql), so neither check gets to answer.
    await expect(status(user, a.org.id)).rejects.toMatchObject({ detail: "INVALID_TOKEN" });
    await expect(subscribe(user, "credits", a.org.id)).rejects.toMatchObject({ detail: "INVALID_TOKEN" });
  } finally {
    await db.owner.query("update app_private.sessions set revoked_at = null where id = $1", [user.sessionId]);
  }
});

test("API keys: their own organization while live; revoked means ended", async () => {
  const { a, b } = tenants;
  const { rows } = await db.queryAs(a.owner, "select (k.api_key).id as id from app_public.create_api_key($1, 'rt') k", [a.org.id]);
  const keyId = rows[0].id;
  const asKey = (fn: (c: any) => Promise<any>) => withSettings(db.auth, { role: "app_user", "jwt.claims.api_key_id": keyId }, fn);
  const keyStatus = (org: string) => asKey((c) => c.query("select app_hidden.realtime_subscriber_status($1) as s", [org])).then((r) => r.rows[0].s);
  expect(await keyStatus(a.org.id)).toBe("ok");
  expect(await keyStatus(b.org.id)).toBe("not_member");
  await db.owner.query("update app_public.api_keys set revoked_at = now() where id = $1", [keyId]);
  expect(await keyStatus(a.org.id)).toBe("session_ended");
});

test("a member removed from the organization is not_member from then on", async () => {
  const { a } = tenants;
  await db.owner.query("delete from app_public.organization_members where organization_id = $1 and user_id = $2", [a.org.id, a.member.userId]);
  expect(await status(a.member, a.org.id)).toBe("not_member");
  await db.owner.query("insert into app_public.organization_members (organization_id, user_id, role) values ($1, $2, 'member')", [a.org.id, a.member.userId]);
  expect(await status(a.member, a.org.id)).toBe("ok");
});

// Issue 25, A5: one query answers for every subscriber of an event.
test("realtime_deliveries: every subscriber of one event in one query, as realtime_subscriber_status would answer", async () => {
  const { a, b } = tenants;
  const { rows } = await db.queryAs(a.owner, "select (k.api_key).id as id from app_public.create_api_key($1, 'rt-batch') k", [a.org.id]);
  const keyId = rows[0].id;
  const { rows: revoked } = await db.queryAs(a.owner, "select (k.api_key).id as id from app_public.create_api_key($1, 'rt-revoked') k", [a.org.id]);
  await db.owner.query("update app_public.api_keys set revoked_at = now() where id = $1", [revoked[0].id]);
  const loggedOut = { p: "user:out", u: a.admin.userId, s: "00000000-0000-7000-8000-000000000001" };
  const subscribers = [
    { p: "user:member", u: a.member.userId, s: a.member.sessionId },
    { p: "user:other", u: b.owner.userId, s: b.owner.sessionId },
    loggedOut,
    { p: "key:live", k: keyId },
    { p: "key:revoked", k: revoked[0].id },
    { p: "nobody" },
  ];
  const answer = async (org: string) => {
    const r = await db.owner.query("select principal, status from app_private.realtime_deliveries($1, $2::jsonb)", [org, JSON.stringify(subscribers)]);
    return Object.fromEntries(r.rows.map((row) => [row.principal, row.status]));
  };
  expect(await answer(a.org.id)).toEqual({
    "user:member": "ok",
    "user:other": "not_member",
    "user:out": "session_ended",
    "key:live": "ok",
    "key:revoked": "session_ended",
    nobody: "session_ended",
  });
  expect(await answer(b.org.id)).toMatchObject({ "user:member": "not_member", "user:other": "ok", "key:live": "not_member" });
  // app roles cannot call it
  await expect(db.queryAs(a.owner, "select * from app_private.realtime_deliveries($1, '[]')", [a.org.id])).rejects.toMatchObject({ code: "42501" });
});

test("realtime_follow: the channel and the plan's budgets, for members only", async () => {
  const { a, b } = tenants;
  await db.owner.query(
    "insert into app_public.plans (id, name, max_realtime_sockets, max_realtime_subscriptions) values ('rt-test', 'Realtime test', 3, 7) on conflict (id) do nothing",
  );
  const original = (await db.owner.query("select plan_id from app_public.organizations where id = $1", [a.org.id])).rows[0].plan_id;
  await db.owner.query("update app_public.organizations set plan_id = 'rt-test' where id = $1", [a.org.id]);
  try {
    const followed = await db.queryAs(a.member, "select * from app_hidden.realtime_follow('credits', $1)", [a.org.id]);
    expect(followed.rows[0]).toEqual({ channel: `tb:credits:${a.org.id}`, max_sockets: 3, max_subscriptions: 7 });
    // another tenant learns neither the channel nor the budgets
    await expect(db.queryAs(b.owner, "select * from app_hidden.realtime_follow('credits', $1)", [a.org.id])).rejects.toMatchObject({ detail: "NOT_FOUND" });
    const limits = await db.queryAs(b.owner, "select * from app_hidden.realtime_organization_limits($1)", [a.org.id]);
    expect(limits.rows[0]).toEqual({ max_sockets: null, max_subscriptions: null });
  } finally {
    await db.owner.query("update app_public.organizations set plan_id = $2 where id = $1", [a.org.id, original]);
  }
  // a plan without realtime budgets: the server's defaults (null)
  const free = await db.queryAs(a.member, "select * from app_hidden.realtime_follow('generations', $1)", [a.org.id]);
  expect(free.rows[0]).toMatchObject({ max_sockets: null, max_subscriptions: null });
});

test("realtime_current_row: only a row of the subscribed organization", async () => {
  const { a, b } = tenants;
  const project = await db.queryAs(b.owner, "insert into app_public.projects (organization_id, name) values ($1, 'B') returning id", [b.org.id]);
  const gen = await db.queryAs(b.owner, "select id from app_public.start_generation($1, $2, 'image', 'm', '{}', 1, 'b-row')", [b.org.id, project.rows[0].id]);
  const row = (org: string) =>
    db.owner.query("select app_private.realtime_current_row('generations', $1, $2) as row", [org, gen.rows[0].id]).then((r) => r.rows[0].row);
  expect(await row(b.org.id)).toEqual(expect.stringContaining(gen.rows[0].id));
  expect(await row(a.org.id)).toBeNull();
});
