// Issue 25, A5: realtime fan-out amplification. Each message used to cost two pool transactions
// per subscriber (an authorisation check, then the payload read), so one user subscribing 1,000
// times to its own organization's credit events and looping reserve/release took every other
// tenant's requests from 4.7/15 ms to 331/600 ms (p50/p99). Now an event is authorised once for
// all its subscribers (one query) and its subscribers' payload reads share one transaction: the
// pool work of one delivery does not grow with the number of subscribers. And each organization
// has a subscription budget (SUBSCRIPTION_LIMIT_REACHED).

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { addMember, createUser, twoTenants } from "../helpers/fixtures.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { createApiKey } from "../helpers/team.ts";
import { connect, trackedSockets, sleep, subscribe, type Subscription } from "../helpers/realtime.ts";
import { createDeliveryReads } from "../../server/realtime/delivery.ts";

let db: TestDatabase;
let server: TestServer;
let tenants: Awaited<ReturnType<typeof twoTenants>>;
let project: string;
const sockets = trackedSockets(() => server.url);

const BUDGET = 14;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db, { realtime: { maxSubscriptionsPerOrganization: BUDGET } });
  tenants = await twoTenants(db);
  await db.owner.query("update app_public.organizations set plan_id = 'enterprise' where id = $1", [tenants.a.org.id]);
  const { rows } = await db.queryAs(tenants.a.member, "insert into app_public.projects (organization_id, name) values ($1, 'P') returning id", [tenants.a.org.id]);
  project = rows[0].id;
});
afterEach(() => sockets.closeAll(() => server.app.realtime.stats().subscriptions === 0));
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

const client = (token: Parameters<typeof connect>[1]) => sockets.connect(token);

const GENERATIONS = `subscription ($o: UUID!) {
  generationUpdated(organizationId: $o) { initial generationId generation { id status } creditAccount { available reserved } }
}`;

/** Pool checkouts on the server's two pools while `fn` runs. */
async function countCheckouts(fn: () => Promise<void>) {
  let checkouts = 0;
  const count = () => {
    checkouts++;
  };
  const pools = [server.app.authPool, server.app.ownerPool];
  pools.forEach((pool) => pool.on("acquire", count));
  const before = server.app.realtime.stats();
  try {
    await fn();
  } finally {
    pools.forEach((pool) => pool.off("acquire", count));
  }
  const after = server.app.realtime.stats();
  return {
    checkouts,
    authorizations: after.authorizations - before.authorizations,
    deliveryTransactions: after.deliveryTransactions - before.deliveryTransactions,
  };
}

/** n subscriptions of organization A's generations, spread over three members' sockets. */
async function subscribers(n: number): Promise<Subscription[]> {
  const users = [tenants.a.member, tenants.a.admin, tenants.a.owner];
  const sockets = users.map((user) => client(user));
  const subs = Array.from({ length: n }, (_, i) => subscribe(sockets[i % sockets.length], GENERATIONS, { o: tenants.a.org.id }));
  await Promise.all(subs.map((s) => s.waitForCount(1)));
  return subs;
}

/** One event (a generation started by SQL, outside the server), delivered to every subscriber. */
async function deliverOne(subs: Subscription[], key: string) {
  return countCheckouts(async () => {
    const { rows } = await db.queryAs(tenants.a.member, "select id from app_public.start_generation($1, $2, 'image', 'm', '{}', 1, $3)", [tenants.a.org.id, project, key]);
    const id = rows[0].id;
    await Promise.all(subs.map((s) => s.waitFor((m) => m.data?.generationUpdated?.generationId === id)));
    for (const s of subs) {
      const message = s.messages.find((m) => m.data?.generationUpdated?.generationId === id)!;
      expect(message.data.generationUpdated.generation).toEqual({ id, status: "running" });
      expect(message.data.generationUpdated.creditAccount).toEqual({ available: expect.any(String), reserved: expect.any(String) });
    }
    await sleep(100); // let any stragglers finish before counting stops
  });
}

test("one event costs the pool the same for 1 subscriber as for 12", async () => {
  const one = await deliverOne(await subscribers(1), "fanout-1");
  await sockets.closeAll(() => server.app.realtime.stats().subscriptions === 0);
  const twelve = await deliverOne(await subscribers(12), "fanout-12");
  // one authorisation query and one read transaction per event, whatever the subscribers
  expect(one).toEqual({ checkouts: 2, authorizations: 1, deliveryTransactions: 1 });
  expect(twelve).toEqual(one);
});

test("a removed member stops receiving at the next event, while the others still receive it", async () => {
  const leaver = await createUser(db, "Fan-out Leaver");
  await addMember(db, tenants.a.org.id, leaver, "member");
  const stays = await subscribers(3);
  const gone = subscribe(client(leaver), GENERATIONS, { o: tenants.a.org.id });
  await gone.waitForCount(1);
  await db.owner.query("delete from app_public.organization_members where organization_id = $1 and user_id = $2", [tenants.a.org.id, leaver.userId]);
  const { rows } = await db.queryAs(tenants.a.member, "select id from app_public.start_generation($1, $2, 'image', 'm', '{}', 1, 'after-leave')", [tenants.a.org.id, project]);
  await Promise.all(stays.map((s) => s.waitFor((m) => m.data?.generationUpdated?.generationId === rows[0].id)));
  await gone.ended();
  expect(gone.completed).toBe(true);
  expect(JSON.stringify(gone.messages)).not.toContain(rows[0].id);
});

test("an organization's subscriptions stop at its budget; another organization is unaffected", async () => {
  const subs = await subscribers(BUDGET);
  const over = subscribe(client(tenants.a.member), GENERATIONS, { o: tenants.a.org.id });
  await over.ended();
  expect(over.messages[0]?.errors?.[0]?.extensions?.code).toBe("SUBSCRIPTION_LIMIT_REACHED");
  expect(over.messages[0]?.errors?.[0]?.message).toBe(`Too many subscriptions for this organization (limit ${BUDGET}).`);
  // the other tenant subscribes as usual
  const other = subscribe(client(tenants.b.member), GENERATIONS, { o: tenants.b.org.id });
  await other.waitForCount(1);
  expect(other.messages[0].data.generationUpdated.initial).toBe(true);
  // ending one frees its place
  subs[0].unsubscribe();
  for (let i = 0; i < 100 && server.app.realtime.stats().subscriptions > BUDGET; i++) await sleep(20);
  const again = subscribe(client(tenants.a.admin), GENERATIONS, { o: tenants.a.org.id });
  await again.waitForCount(1);
  expect(again.messages[0].data?.generationUpdated?.initial).toBe(true);
});

test("a plan's subscription budget replaces the default", async () => {
  await db.owner.query("insert into app_public.plans (id, name, max_realtime_subscriptions) values ('rt-two-subs', 'Two subscriptions', 2) on conflict (id) do nothing");
  await db.owner.query("update app_public.organizations set plan_id = 'rt-two-subs' where id = $1", [tenants.b.org.id]);
  try {
    const c = client(tenants.b.owner);
    // sent together: whichever comes last is refused
    const subs = [0, 1, 2].map(() => subscribe(c, GENERATIONS, { o: tenants.b.org.id }));
    await Promise.all(subs.map((s) => s.waitForCount(1)));
    const outcomes = subs.map((s) => s.messages[0].errors?.[0]?.extensions?.code ?? (s.messages[0].data?.generationUpdated?.initial ? "LIVE" : "?"));
    expect(outcomes.sort()).toEqual(["LIVE", "LIVE", "SUBSCRIPTION_LIMIT_REACHED"]);
  } finally {
    await db.owner.query("update app_public.organizations set plan_id = 'free' where id = $1", [tenants.b.org.id]);
  }
});

test("reads of different subscribers in one shared transaction never see each other's claims", async () => {
  const key = await createApiKey(db, tenants.a.owner, tenants.a.org.id, "shared-tx");
  const reads = createDeliveryReads(server.app.authPool, 1);
  const as = (settings: Record<string, string>) =>
    reads.withPgClient(settings, async (client: any) => {
      const { rows } = await client.query({
        text: `select nullif(current_setting('jwt.claims.user_id', true), '') as user_id,
                      nullif(current_setting('jwt.claims.api_key_id', true), '') as key_id,
                      (select array_agg(organization_id::text order by organization_id) from app_public.credit_accounts) as visible`,
      });
      return rows[0];
    });
  const user = (u: typeof tenants.a.member) => ({ role: "app_user", "jwt.claims.user_id": u.userId, "jwt.claims.session_id": u.sessionId });
  const before = reads.transactions();
  // asked in one turn: one transaction, in this order
  const [aKey, bUser, aUser, ended] = await Promise.allSettled([
    as({ role: "app_user", "jwt.claims.api_key_id": key.id }),
    as(user(tenants.b.member)),
    as(user(tenants.a.member)),
    as({ role: "app_user", "jwt.claims.user_id": tenants.a.admin.userId, "jwt.claims.session_id": "00000000-0000-7000-8000-000000000009" }),
  ]);
  expect(aKey).toEqual({ status: "fulfilled", value: { user_id: null, key_id: key.id, visible: [tenants.a.org.id] } });
  expect(bUser).toEqual({ status: "fulfilled", value: { user_id: tenants.b.member.userId, key_id: null, visible: [tenants.b.org.id] } });
  expect(aUser).toEqual({ status: "fulfilled", value: { user_id: tenants.a.member.userId, key_id: null, visible: [tenants.a.org.id] } });
  // an ended session is refused as a request would be, and the reads after it still run
  expect(ended).toMatchObject({ status: "rejected", reason: { detail: "INVALID_TOKEN" } });
  expect(reads.transactions() - before).toBe(1);
  const after = await as(user(tenants.b.member));
  expect(after.visible).toEqual([tenants.b.org.id]);
});
