// Issue 25, A4 (sockets): one tenant took every realtime socket — 1,000 API keys × 10 sockets
// each, 10,000 sockets in 9.1 s — and another tenant's websocket then got HTTP 503. Sockets are
// now budgeted per organization (a plan's max_realtime_sockets, else
// REALTIME_MAX_CONNECTIONS_PER_ORGANIZATION), and no organization may hold more than
// REALTIME_MAX_ORGANIZATION_SHARE percent of the process's sockets, so the global cap cannot be
// filled by one organization. Scaled down here: 10 sockets per process, 50 % per organization.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { twoTenants } from "../helpers/fixtures.ts";
import { createApiKey } from "../helpers/team.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { connect, trackedSockets, sleep, subscribe } from "../helpers/realtime.ts";

let db: TestDatabase;
let server: TestServer;
let tenants: Awaited<ReturnType<typeof twoTenants>>;
const sockets = trackedSockets(() => server.url);

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db, {
    realtime: { maxConnections: 10, maxConnectionsPerUser: 2, maxOrganizationSharePercent: 50, maxConnectionsPerOrganization: 1000 },
  });
  tenants = await twoTenants(db);
  await db.owner.query("update app_public.organizations set plan_id = 'enterprise' where id = $1", [tenants.a.org.id]);
});
afterEach(() => sockets.closeAll(() => server.app.realtime.stats().connections === 0));
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

const client = (token: Parameters<typeof connect>[1]) => sockets.connect(token);

const CREDITS = `subscription ($o: UUID!) { creditAccountUpdated(organizationId: $o) { initial } }`;

/** Opens a socket and subscribes: "live", or the close code and reason it was refused with. */
async function attempt(token: Parameters<typeof connect>[1], org: string): Promise<string> {
  const c = client(token);
  const sub = subscribe(c, CREDITS, { o: org });
  for (let i = 0; i < 500; i++) {
    if (sub.messages.length > 0) {
      return sub.messages[0].data?.creditAccountUpdated?.initial ? "live" : `error ${sub.messages[0].errors?.[0]?.extensions?.code}`;
    }
    if (c.closes.length > 0) return `${c.closes[0].code} ${c.closes[0].reason}`;
    await sleep(20);
  }
  throw new Error("no answer to the subscription");
}

async function keys(org: string, owner: (typeof tenants)["a"]["owner"], count: number, prefix: string) {
  const made = [];
  for (let i = 0; i < count; i++) made.push((await createApiKey(db, owner, org, `${prefix}-${i}`)).secret as string);
  return made;
}

test("many API keys of one organization cannot take the process's sockets; another tenant still connects", async () => {
  const secrets = await keys(tenants.a.org.id, tenants.a.owner, 5, "flood");
  const results: string[] = [];
  // 5 keys × 2 sockets (each key within its own limit): 10 sockets, the whole process
  for (const secret of secrets) for (let i = 0; i < 2; i++) results.push(await attempt(secret, tenants.a.org.id));
  expect(results.filter((r) => r === "live")).toHaveLength(5);
  expect(results.filter((r) => r !== "live")).toEqual(
    Array(5).fill("4429 SOCKET_LIMIT_REACHED: Too many connections for this organization (limit 5)."),
  );
  // the other tenant's websocket is served (it got HTTP 503 before)
  expect(await attempt(tenants.b.member, tenants.b.org.id)).toBe("live");
  // a user of the full organization: the subscription is refused, the socket stays usable
  const member = client(tenants.a.member);
  const refused = subscribe(member, CREDITS, { o: tenants.a.org.id });
  await refused.ended();
  expect(refused.messages[0]?.errors?.[0]).toMatchObject({
    message: "Too many connections for this organization (limit 5).",
    extensions: { code: "SOCKET_LIMIT_REACHED" },
  });
  expect(member.closes).toEqual([]);
});

test("a socket closed frees its place in the organization", async () => {
  const [secret] = await keys(tenants.a.org.id, tenants.a.owner, 1, "free");
  const others = await keys(tenants.a.org.id, tenants.a.owner, 3, "fill");
  for (const s of others) for (let i = 0; i < 2; i++) await attempt(s, tenants.a.org.id);
  // 5 of A's sockets are open (the 6th was refused)
  expect(await attempt(secret, tenants.a.org.id)).toMatch(/^4429 SOCKET_LIMIT_REACHED/);
  await Promise.all(sockets.open.splice(0, 1).map((c) => c.dispose()));
  for (let i = 0; i < 100 && server.app.realtime.stats().connections > 4; i++) await sleep(20);
  expect(await attempt(secret, tenants.a.org.id)).toBe("live");
});

test("a plan's socket budget replaces the default (within the share)", async () => {
  await db.owner.query("insert into app_public.plans (id, name, max_realtime_sockets) values ('rt-one-socket', 'One socket', 1) on conflict (id) do nothing");
  await db.owner.query("update app_public.organizations set plan_id = 'rt-one-socket' where id = $1", [tenants.b.org.id]);
  try {
    const [first, second] = await keys(tenants.b.org.id, tenants.b.owner, 2, "plan");
    expect(await attempt(first, tenants.b.org.id)).toBe("live");
    expect(await attempt(second, tenants.b.org.id)).toBe("4429 SOCKET_LIMIT_REACHED: Too many connections for this organization (limit 1).");
    // a user's socket counts in the organization once it subscribes there
    expect(await attempt(tenants.b.member, tenants.b.org.id)).toBe("error SOCKET_LIMIT_REACHED");
  } finally {
    await db.owner.query("update app_public.organizations set plan_id = 'free' where id = $1", [tenants.b.org.id]);
  }
});
