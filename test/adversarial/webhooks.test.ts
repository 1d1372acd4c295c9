// Attacks on outbound webhooks, kept as tests (ATTACKS.md, "Outbound calls to tenant-chosen
// places", "Volume within every limit"):
// - SSRF: literal internal addresses in every form, a name resolving to 127.0.0.1 (refused by the
//   agent's lookup at connect time), a redirect to an internal address (never followed); the SQL
//   and Node lists of internal ranges agree;
// - one organization's endpoint receiving anything of another's;
// - a hanging endpoint of one organization, with many messages queued, delaying another's
//   delivery, or holding more than its share of worker slots.

import http from "node:http";
import type { AddressInfo } from "node:net";
import pg from "pg";
import { Logger, run, runOnce, type Runner } from "graphile-worker";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { twoTenants } from "../helpers/fixtures.ts";
import { setPlan } from "../helpers/team.ts";
import { startReceiver, type Receiver } from "../helpers/webhook-receiver.ts";
import { taskList } from "../../workers/tasks/index.ts";
import { checkWebhookUrl, ForbiddenAddressError, INTERNAL_RANGES, isInternalAddress, safeAgents } from "../../workers/webhooks/ssrf.ts";
import { postWebhook } from "../../workers/webhooks/http.ts";

let db: TestDatabase;
let receiver: Receiver;
let workerPool: pg.Pool;
let t: Awaited<ReturnType<typeof twoTenants>>;
const logger = new Logger(() => () => {});
const ENV: Record<string, string> = {
  WEBHOOK_ALLOW_PRIVATE_ADDRESSES: "true",
  WEBHOOK_RETRY_SCHEDULE: "none",
  WEBHOOK_TIMEOUT_MS: "1500",
};
const saved: Record<string, string | undefined> = {};

beforeAll(async () => {
  db = await createTestDatabase();
  workerPool = new pg.Pool({ connectionString: db.ownerUrl, max: 8 });
  workerPool.on("error", () => {});
  workerPool.on("connect", (client) => client.on("error", () => {}));
  receiver = await startReceiver();
  t = await twoTenants(db);
  await setPlan(db, t.a.org.id, "enterprise");
  await setPlan(db, t.b.org.id, "enterprise");
  for (const [k, v] of Object.entries(ENV)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  await db.owner.query("update app_private.webhook_settings set allow_http = true, allow_private_addresses = true");
});
afterAll(async () => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await receiver?.close();
  await workerPool?.end();
  await db?.drop();
});

const make = async (actor: any, org: string, pathName: string, types: string[] = []) =>
  (await db.queryAs(actor, "select (r.webhook_endpoint).id from app_public.create_webhook_endpoint($1, $2, '', $3) r", [org, receiver.url(pathName), types])).rows[0].id as string;

test("every form of an internal address is internal, in Node and in SQL alike", async () => {
  const internal = [
    "127.0.0.1", "127.255.255.254", "10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.0.1", "169.254.169.254", "100.64.0.1",
    "224.0.0.1", "0.0.0.0", "255.255.255.255", "::1", "::", "fd00::1", "fc00::1", "fe80::1", "ff02::1", "::ffff:127.0.0.1",
    "::ffff:7f00:1", "::ffff:169.254.169.254", "::ffff:10.0.0.1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::",
  ];
  const external = ["93.184.216.34", "8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:2800:220:1::1", "2a00:1450:4001::1"];
  for (const address of internal) expect([address, isInternalAddress(address)]).toEqual([address, true]);
  for (const address of external) expect([address, isInternalAddress(address)]).toEqual([address, false]);
  const { rows } = await db.owner.query("select a, app_private.is_internal_address(a::inet) as internal from unnest($1::text[]) a", [[...internal, ...external]]);
  for (const row of rows) expect([row.a, row.internal]).toEqual([row.a, internal.includes(row.a)]);
  // the two range lists are the same list
  const sqlRanges = await db.owner.query(
    "select count(*)::int as n from unnest($1::inet[]) r where app_private.is_internal_address(r)",
    [INTERNAL_RANGES.map(([address]) => address)],
  );
  expect(sqlRanges.rows[0].n).toBe(INTERNAL_RANGES.length);
});

test("URL forms that WHATWG parsing turns into internal addresses are refused before connecting", () => {
  const options = { allowHttp: true, allowPrivate: false };
  for (const url of [
    "http://2130706433/", "http://0x7f000001/", "http://0177.0.0.1/", "http://127.1/", "http://0x7f.1/", "http://[::1]/",
    "http://[::ffff:127.0.0.1]/", "http://[::ffff:a9fe:a9fe]/", "http://169.254.169.254/latest/meta-data/", "http://localhost/", "http://a.localhost/",
  ]) {
    expect([url, "error" in checkWebhookUrl(url, options)]).toEqual([url, true]);
  }
  expect("error" in checkWebhookUrl("https://user:pw@hooks.example.com/", options)).toBe(true);
  expect("error" in checkWebhookUrl("http://hooks.example.com/", { allowHttp: false, allowPrivate: false })).toBe(true);
  expect("url" in checkWebhookUrl("https://hooks.example.com/", options)).toBe(true);
});

test("a name resolving to 127.0.0.1 is refused by the agent's own lookup; a redirect to an internal address is not followed", async () => {
  let internalHits = 0;
  const internalServer = http.createServer((_req, res) => {
    internalHits++;
    res.end("secret");
  });
  await new Promise<void>((resolve) => internalServer.listen(0, "127.0.0.1", resolve));
  const internalPort = (internalServer.address() as AddressInfo).port;
  try {
    const refused = await postWebhook(`http://localhost:${internalPort}/`, {}, "{}", { timeoutMs: 2000, allowHttp: true, allowPrivate: false });
    expect(refused.statusCode).toBeNull();
    expect(refused.error).toMatch(/localhost is a local host|resolves to an internal address/);
    // the agent's own lookup, at connect time, with no URL check in front (a name that resolved
    // elsewhere when the endpoint was made and to 127.0.0.1 now is refused the same way)
    const viaLookup = await new Promise<Error>((resolve) => {
      const request = http.request(`http://localhost:${internalPort}/`, { agent: safeAgents(false).http, method: "POST" }, () => resolve(new Error("connected")));
      request.on("error", resolve);
      request.end();
    });
    expect(viaLookup).toBeInstanceOf(ForbiddenAddressError);
    expect(viaLookup.message).toMatch(/localhost resolves to an internal address \((127\.0\.0\.1|::1)\); refused/);
    expect(internalHits).toBe(0);

    receiver.answer("/redirect", { status: 307, headers: { location: `http://127.0.0.1:${internalPort}/admin` } });
    const redirected = await postWebhook(receiver.url("/redirect"), {}, "{}", { timeoutMs: 2000, allowHttp: true, allowPrivate: true });
    expect(redirected).toMatchObject({ statusCode: 307, error: "Redirect (307) not followed" });
    expect(internalHits).toBe(0);
  } finally {
    await new Promise<void>((resolve) => internalServer.close(() => resolve()));
  }
});

test("an endpoint of one organization receives nothing of another", async () => {
  await make(t.a.admin, t.a.org.id, "/iso-a");
  await make(t.b.admin, t.b.org.id, "/iso-b");
  // events in B only
  await db.queryAs(t.b.owner, "select app_public.change_member_role($1, $2, 'admin')", [t.b.org.id, t.b.member.userId]);
  await db.queryAs(t.b.owner, "select app_public.change_member_role($1, $2, 'member')", [t.b.org.id, t.b.member.userId]);
  // every due job, until none is left (a job of the same endpoint waits for its queue to unlock)
  for (let i = 0; i < 100; i++) {
    await runOnce({ pgPool: workerPool, taskList, concurrency: 2, noHandleSignals: true, logger });
    const { rows } = await db.owner.query("select count(*)::int as n from graphile_worker.jobs where run_at <= now()");
    if (rows[0].n === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  expect(receiver.received.filter((r) => r.path === "/iso-b")).toHaveLength(2);
  expect(receiver.received.filter((r) => r.path === "/iso-a")).toHaveLength(0);
  // and B's events are invisible to A's admins, who cannot replay them either
  const bMessage = (await db.owner.query("select id from app_public.webhook_messages where organization_id = $1 limit 1", [t.b.org.id])).rows[0].id;
  await expect(db.queryAs(t.a.owner, "select app_public.replay_webhook_message($1)", [bMessage])).rejects.toMatchObject({ detail: "NOT_FOUND" });
  // clean up for the next test
  await db.owner.query("delete from app_public.webhook_endpoints");
});

test("hanging endpoints of one organization (many messages queued) do not delay another's delivery nor hold more than its share", async () => {
  // B: three endpoints that never answer, 10 messages each; the worker has 4 slots
  for (const name of ["/b-1", "/b-2", "/b-3"]) {
    await make(t.b.admin, t.b.org.id, name, ["webhook.test"]);
    receiver.answer(name, { hang: true });
  }
  for (let i = 0; i < 10; i++) {
    await db.owner.query("select app_private.emit_webhook_event($1, 'credits.low_balance', '{\"balance\": 1, \"threshold\": 2}')", [t.b.org.id]);
  }
  await db.owner.query("update app_public.webhook_endpoints set event_types = '{}' where organization_id = $1", [t.b.org.id]);
  for (let i = 0; i < 10; i++) {
    await db.owner.query("select app_private.emit_webhook_event($1, 'credits.low_balance', '{\"balance\": 1, \"threshold\": 2}')", [t.b.org.id]);
  }
  // B's requests outlast the test (no timeout ends them): whatever A gets, it gets past them
  process.env.WEBHOOK_TIMEOUT_MS = "60000";
  const runner: Runner = await run({ pgPool: workerPool, taskList, concurrency: 4, noHandleSignals: true, logger, pollInterval: 200, crontab: "" });
  // Each wait is bounded, and says what the deliveries and jobs were if it runs out: a loaded
  // machine then fails with the state, not with jest's bare timeout.
  const deadline = Date.now() + 40_000;
  const waitUntil = async (what: string, done: () => boolean) => {
    while (!done()) {
      if (Date.now() > deadline) {
        const deliveries = await db.owner.query("select organization_id = $1 as of_b, status, count(*)::int as n from app_public.webhook_deliveries group by 1, 2 order by 1, 2", [t.b.org.id]);
        const jobs = await db.owner.query("select task_identifier, count(*)::int as n, count(locked_at)::int as locked from graphile_worker.jobs group by 1");
        throw new Error(`${what}: not within 40 s; deliveries ${JSON.stringify(deliveries.rows)}, jobs ${JSON.stringify(jobs.rows)}, received ${receiver.received.map((r) => r.path).join(" ")}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  try {
    await waitUntil("B's first delivery", () => receiver.received.some((r) => r.path.startsWith("/b-")));
    // A's event, committed while B's endpoints hang with 30 messages queued
    await make(t.a.admin, t.a.org.id, "/a-1", ["member.role_changed"]);
    await db.queryAs(t.a.owner, "select app_public.change_member_role($1, $2, 'admin')", [t.a.org.id, t.a.member.userId]);
    await waitUntil("A's delivery", () => receiver.received.some((r) => r.path === "/a-1"));
    // B: at most WEBHOOK_MAX_IN_FLIGHT_PER_ORGANIZATION (2) requests, all still hanging, each
    // endpoint one at a time; its other 28 messages wait without holding a worker slot
    const bReceived = receiver.received.filter((r) => r.path.startsWith("/b-")).length;
    expect(bReceived).toBeGreaterThanOrEqual(1);
    expect(bReceived).toBeLessThanOrEqual(2);
    for (const name of ["/b-1", "/b-2", "/b-3"]) expect(receiver.maxInFlight.get(name) ?? 0).toBeLessThanOrEqual(1);
    expect(receiver.maxInFlightOfGroup.get("b")).toBeLessThanOrEqual(2);
    const pending = await db.owner.query("select count(*)::int as n from app_public.webhook_deliveries where organization_id = $1 and status = 'pending'", [t.b.org.id]);
    expect(pending.rows[0].n).toBe(30);
  } finally {
    // B's endpoints answer from now on, then the hanging requests end: a delivery the worker
    // starts meanwhile gets its answer, so stopping the runner never waits for a 60 s timeout.
    for (const name of ["/b-1", "/b-2", "/b-3"]) receiver.answer(name, { status: 200 });
    receiver.releaseHanging();
    await runner.stop();
    process.env.WEBHOOK_TIMEOUT_MS = ENV.WEBHOOK_TIMEOUT_MS;
  }
});

test("a header value Node would refuse fails the attempt cleanly (SQL refuses such values at creation too)", async () => {
  const outcome = await postWebhook(receiver.url("/bad-header"), { "X-Euro": "\u20ac" }, "{}", { timeoutMs: 2000, allowHttp: true, allowPrivate: true });
  expect(outcome).toMatchObject({ statusCode: null, error: "Request refused: ERR_INVALID_CHAR" });
  expect(receiver.received.filter((r) => r.path === "/bad-header")).toEqual([]);
  await expect(
    db.queryAs(t.a.admin, "select app_public.create_webhook_endpoint($1, 'https://hooks.example.com/x', '', '{}', '{\"X-Euro\": \"\u20ac\"}')", [t.a.org.id]),
  ).rejects.toMatchObject({ detail: "WEBHOOK_HEADERS_INVALID" });
});
