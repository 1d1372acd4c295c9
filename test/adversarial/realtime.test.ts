// Attacks on the websocket endpoint, kept as tests: subscription floods on one socket,
// connection floods by one user and by anyone, oversized messages, idle unauthenticated sockets,
// channel names from client input, several root fields in one subscription, forged
// notifications. Each one is bounded and leaves other tenants' subscriptions working.

import WebSocket from "ws";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { twoTenants } from "../helpers/fixtures.ts";
import { startTestServer, tokenFor, type TestServer } from "../helpers/server.ts";
import { connect, trackedSockets, sleep, subscribe, wsUrl } from "../helpers/realtime.ts";

let db: TestDatabase;
let server: TestServer;
let tenants: Awaited<ReturnType<typeof twoTenants>>;
const sockets = trackedSockets(() => server.url);

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db, {
    // (the per-organization share of sockets is tested in realtime-sockets.test.ts)
    realtime: { maxSubscriptionsPerConnection: 3, maxConnectionsPerUser: 2, maxConnections: 8, maxOrganizationSharePercent: 100 },
    limits: { maxBodyBytes: 4000 },
  });
  tenants = await twoTenants(db);
});
afterEach(() => sockets.closeAll(() => server.app.realtime.stats().connections === 0));
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

const client = (token: Parameters<typeof connect>[1]) => sockets.connect(token);

const CREDITS = `subscription ($o: UUID!) { creditAccountUpdated(organizationId: $o) { initial } }`;

test("a subscription flood on one socket stops at the per-connection limit", async () => {
  const c = client(tenants.a.member);
  const subs = Array.from({ length: 6 }, () => subscribe(c, CREDITS, { o: tenants.a.org.id }));
  await Promise.all(subs.slice(0, 3).map((s) => s.waitForCount(1)));
  await Promise.all(subs.slice(3).map((s) => s.ended()));
  for (const s of subs.slice(3)) {
    expect((s.error as any)?.[0]?.extensions?.code).toBe("TOO_MANY_SUBSCRIPTIONS");
  }
  expect(server.app.realtime.stats().subscriptions).toBe(3);
  // ending one frees its place
  subs[0].unsubscribe();
  for (let i = 0; i < 50 && server.app.realtime.stats().subscriptions > 2; i++) await sleep(20);
  const again = subscribe(c, CREDITS, { o: tenants.a.org.id });
  await again.waitForCount(1);
});

test("one user cannot open more sockets than the per-user limit; others are unaffected", async () => {
  const first = client(tenants.a.member);
  const second = client(tenants.a.member);
  await Promise.all([first, second].map((c) => subscribe(c, CREDITS, { o: tenants.a.org.id }).waitForCount(1)));
  const third = client(tenants.a.member);
  expect(await third.closed()).toEqual({ code: 4429, reason: "Too many connections for this user (limit 2)." });
  // another user of the same organization still connects
  const other = client(tenants.a.owner);
  const live = subscribe(other, CREDITS, { o: tenants.a.org.id });
  await live.waitForCount(1);
  expect(live.messages[0].data?.creditAccountUpdated?.initial).toBe(true);
});

test("sockets past the process limit are refused at the upgrade; silent sockets are closed after 3 s", async () => {
  const raw: WebSocket[] = [];
  const opened = async () => {
    const ws = new WebSocket(wsUrl(server.url), "graphql-transport-ws");
    raw.push(ws);
    return new Promise<{ open: boolean; status?: number; close?: number }>((resolve) => {
      ws.once("open", () => resolve({ open: true }));
      ws.once("unexpected-response", (_req, res) => resolve({ open: false, status: res.statusCode }));
      ws.once("error", () => resolve({ open: false }));
    });
  };
  try {
    const results = [];
    for (let i = 0; i < 10; i++) results.push(await opened());
    expect(results.filter((r) => r.open)).toHaveLength(8);
    expect(results.filter((r) => !r.open).map((r) => r.status)).toEqual([503, 503]);
    // never sending connection_init: closed by the server (graphql-ws: 4408)
    const code = await new Promise<number>((resolve) => raw[0].once("close", (c) => resolve(c)));
    expect(code).toBe(4408);
  } finally {
    raw.forEach((ws) => ws.terminate());
  }
});

test("an oversized message closes the socket (1009) before it is parsed", async () => {
  const ws = new WebSocket(wsUrl(server.url), "graphql-transport-ws");
  await new Promise((resolve) => ws.once("open", resolve));
  const closed = new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)));
  ws.send(JSON.stringify({ type: "connection_init", payload: { Authorization: `Bearer ${tokenFor(tenants.a.member)}`, pad: "x".repeat(10_000) } }));
  expect(await closed).toBe(1009);
});

test("channel names never come from client input", async () => {
  const c = client(tenants.a.member);
  for (const org of ["tb:generations:x", "'; listen x; --", "a".repeat(200), "00000000-0000-0000-0000-00000000000g"]) {
    const s = subscribe(c, CREDITS, { o: org });
    await s.ended();
    // refused by the UUID scalar: nothing reaches the database
    expect(JSON.stringify(s.error ?? s.messages)).toMatch(/UUID|Expected|invalid/i);
  }
  const live = subscribe(c, CREDITS, { o: tenants.a.org.id });
  await live.waitForCount(1);
  const channels = server.app.realtime.listener.channels();
  expect(channels.length).toBeGreaterThan(0);
  for (const channel of channels) {
    expect(channel).toMatch(/^tb:(generations|credits|organization):[0-9a-f-]{36}$/);
    expect(Buffer.byteLength(channel)).toBeLessThanOrEqual(63);
  }
});

test("one subscription cannot multiply itself with several root fields or aliases", async () => {
  const c = client(tenants.a.member);
  const s = subscribe(c, `subscription ($o: UUID!) { a: creditAccountUpdated(organizationId: $o) { initial } b: creditAccountUpdated(organizationId: $o) { initial } }`, { o: tenants.a.org.id });
  await s.ended();
  expect(JSON.stringify(s.error)).toMatch(/only one top level field/i);
});

test("a forged notification naming another tenant's row yields nothing of it", async () => {
  const c = client(tenants.a.member);
  const s = subscribe(c, `subscription ($o: UUID!) { generationUpdated(organizationId: $o) { generationId generation { id } } }`, { o: tenants.a.org.id });
  await s.waitForCount(1);
  const { rows } = await db.queryAs(tenants.b.owner, "insert into app_public.projects (organization_id, name) values ($1, 'B') returning id", [tenants.b.org.id]);
  const gen = await db.queryAs(tenants.b.owner, "select id from app_public.start_generation($1, $2, 'image', 'm', '{}', 1, 'b-1')", [tenants.b.org.id, rows[0].id]);
  const bGeneration = gen.rows[0].id;
  // anyone who can run SQL can NOTIFY; the payload is only ever an id to look up under RLS
  await db.root.query("select pg_notify($1, $2)", [`tb:generations:${tenants.a.org.id}`, JSON.stringify({ id: bGeneration })]);
  await db.root.query("select pg_notify($1, 'not json')", [`tb:generations:${tenants.a.org.id}`]);
  // nor one carrying another tenant's row (a generation's notification carries its row)
  const bRow = (await db.root.query("select g::text as row from app_public.generations g where g.id = $1", [bGeneration])).rows[0].row;
  await db.root.query("select pg_notify($1, $2)", [`tb:generations:${tenants.a.org.id}`, JSON.stringify({ id: bGeneration, row: bRow })]);
  await s.waitFor(() => s.messages.filter((m) => m.data?.generationUpdated?.generationId === bGeneration).length === 2);
  const forged = s.messages.filter((m) => m.data?.generationUpdated?.generationId === bGeneration);
  expect(forged.map((m) => m.data.generationUpdated.generation)).toEqual([null, null]);
});
