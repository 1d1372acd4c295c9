// Issue 25, finding 6: 16 concurrent, allowed `promptSearch` queries from one tenant took the
// other tenant's p50 from 6 ms to 4,976 ms: every request pool connection was busy with the
// attacker's slow statements, and everyone else waited in the pool's queue behind them. Now each
// tenant's requests in flight are bounded (server/fair-share/), the excess waits in a fair queue
// before taking a connection, and past the queue it is refused with RATE_LIMITED.
//
// Slowness is made deterministic here: the attacker's requests are mutations of its own
// organization while this test holds that row's lock, so each one that reaches the database
// waits (holding a pool connection) until the test lets go. pg_stat_activity shows how many.

import type pg from "pg";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { createOrganization, createUser, type TestUser } from "../helpers/fixtures.ts";
import { tokenFor } from "../helpers/server.ts";
import { postGraphQL, startServer, type OpsServer } from "../helpers/operations.ts";
import { createApiKey } from "../helpers/team.ts";

const POOL = 6;
let db: TestDatabase;
let attacker: TestUser;
let victim: TestUser;
let attackerOrg: string;

beforeAll(async () => {
  db = await createTestDatabase();
  attacker = await createUser(db, "Attacker");
  victim = await createUser(db, "Victim");
  attackerOrg = (await createOrganization(db, attacker, "Noisy")).id;
  await createOrganization(db, victim, "Quiet");
}, 120_000);
afterAll(async () => {
  await db?.drop();
});

const RENAME = `mutation R($id: UUID!, $name: String!) { updateOrganization(input: { id: $id, patch: { name: $name } }) { organization { id } } }`;

/** Request transactions of this database waiting for a lock (the attacker's held mutations). */
// The most of five looks 20 ms apart: a backend waiting on a lock wakes now and then (its deadlock
// check, every deadlock_timeout) and shows no wait event for that moment, which a single look on a
// loaded machine can catch.
async function waitingOnLock(): Promise<number> {
  let most = 0;
  for (let look = 0; look < 5; look++) {
    if (look > 0) await new Promise((resolve) => setTimeout(resolve, 20));
    const { rows } = await db.root.query(
      `select count(*)::int as n from pg_stat_activity
       where datname = current_database() and wait_event_type = 'Lock' and pid <> pg_backend_pid()`,
    );
    most = Math.max(most, rows[0].n);
  }
  return most;
}

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Holds the attacker organization's row lock until release() (a transaction as the superuser). */
async function holdAttackerRow(): Promise<{ release(): Promise<void> }> {
  const client: pg.PoolClient = await db.root.connect();
  await client.query("begin");
  await client.query("select 1 from app_public.organizations where id = $1 for update", [attackerOrg]);
  return {
    async release() {
      await client.query("commit");
      client.release();
    },
  };
}

function flood(server: OpsServer, count: number) {
  const auth = { authorization: `Bearer ${tokenFor(attacker)}` };
  return Array.from({ length: count }, (_, i) => postGraphQL(server.url, { query: RENAME, variables: { id: attackerOrg, name: `Noisy ${i}` } }, auth));
}

function victimQuery(server: OpsServer) {
  return postGraphQL(server.url, { query: "{ currentUser { id } }" }, { authorization: `Bearer ${tokenFor(victim)}` });
}

// Statements wait for the lock far longer than the default 5 s timeout would allow.
const patient = { authPoolSize: POOL, limits: { statementTimeoutMs: 300_000 } };

test("the finding, with the gate off: one tenant's held requests take every connection and the other tenant waits in the pool's queue", async () => {
  const server = await startServer(db, { ...patient, fairShare: { enabled: false } });
  const lock = await holdAttackerRow();
  try {
    const attacks = flood(server, 12);
    await until(async () => (await waitingOnLock()) === POOL, `${POOL} attacker statements waiting on the lock`);
    const victimAnswer = victimQuery(server);
    // The victim's request has nowhere to go: it waits for a connection the attacker holds.
    await until(() => server.app.authPool.waitingCount > 12 - POOL, "the victim queued in the pool");
    await lock.release();
    expect((await victimAnswer).body.data.currentUser.id).toBe(victim.userId);
    await Promise.all(attacks);
  } finally {
    await server.close();
  }
}, 120_000);

test("with fair share: the attacker has at most 4 requests in flight, the rest wait before taking a connection, and the other tenant is served while they wait", async () => {
  const server = await startServer(db, patient);
  const lock = await holdAttackerRow();
  let released = false;
  try {
    const attacks = flood(server, 12);
    const scheduler = server.app.fairShare.scheduler;
    await until(async () => (await waitingOnLock()) === 4, "4 attacker statements waiting on the lock");
    await until(() => scheduler.queuedOf(`user:${attacker.userId}`) === 8, "8 attacker requests queued");
    // The pool has room: the victim's query is answered while the attacker's requests are held.
    const answered = await victimQuery(server);
    expect(answered.status).toBe(200);
    expect(answered.body.data.currentUser.id).toBe(victim.userId);
    // ...and still no more than 4 of the attacker's statements ever reached the database.
    expect(await waitingOnLock()).toBe(4);
    expect(scheduler.inFlightOf(`user:${attacker.userId}`)).toBe(4);
    expect(server.app.authPool.waitingCount).toBe(0);
    released = true;
    await lock.release();
    // Queued, not dropped: every attacker request is answered once it gets its turn.
    const results = await Promise.all(attacks);
    expect(results.map((r) => r.status)).toEqual(Array(12).fill(200));
    expect(results.every((r) => r.body.data.updateOrganization.organization.id === attackerOrg)).toBe(true);
  } finally {
    if (!released) await lock.release();
    await server.close();
  }
}, 120_000);

test("past its queue, a tenant's requests are refused with HTTP 429, Retry-After and RATE_LIMITED; others are not", async () => {
  const server = await startServer(db, { ...patient, fairShare: { maxInFlightPerUser: 2, maxQueuedPerTenant: 3 } });
  const lock = await holdAttackerRow();
  let released = false;
  try {
    const attacks = flood(server, 9);
    const early: number[] = [];
    for (const attack of attacks) void attack.then((r) => early.push(r.status));
    await until(async () => (await waitingOnLock()) === 2, "2 attacker statements waiting on the lock");
    const scheduler = server.app.fairShare.scheduler;
    await until(() => scheduler.queuedOf(`user:${attacker.userId}`) === 3, "3 attacker requests queued");
    // 2 in flight + 3 queued: the other 4 are refused at once, while the lock is still held.
    await until(() => early.length === 4, "4 answers while the lock is held");
    expect(early).toEqual([429, 429, 429, 429]);
    const victimAnswer = await victimQuery(server);
    expect(victimAnswer.body.data.currentUser.id).toBe(victim.userId);
    released = true;
    await lock.release();
    const results = await Promise.all(attacks);
    const refusals = results.filter((r) => r.status === 429);
    expect(refusals).toHaveLength(4);
    expect(results.filter((r) => r.status === 200)).toHaveLength(5);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/^tenantbase_fair_share_refused_total\{reason="queue_full"\} 4$/m);
    expect(metrics).toMatch(/^tenantbase_fair_share_admitted_total\{how="after_wait"\} 3$/m);
    for (const refusal of refusals) {
      const retryAfter = Number(refusal.headers.get("retry-after"));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(refusal.body).toEqual({
        errors: [{ message: expect.stringMatching(/too many requests/i), extensions: { code: "RATE_LIMITED", retryAfter } }],
      });
    }
  } finally {
    if (!released) await lock.release();
    await server.close();
  }
}, 120_000);

test("API keys count per key and per organization: a free organization's keys together have its plan's 2 requests in flight", async () => {
  const { rows } = await db.owner.query("select max_concurrent_requests as n from app_public.plans where id = 'free'");
  expect(rows[0].n).toBe(2);
  const keys = [await createApiKey(db, attacker, attackerOrg, "one", "admin"), await createApiKey(db, attacker, attackerOrg, "two", "admin")];
  const server = await startServer(db, patient);
  const lock = await holdAttackerRow();
  let released = false;
  try {
    const attacks = keys.flatMap((key) =>
      Array.from({ length: 5 }, (_, i) =>
        postGraphQL(server.url, { query: RENAME, variables: { id: attackerOrg, name: `Key ${i}` } }, { authorization: `Bearer ${key.secret}` }),
      ),
    );
    const scheduler = server.app.fairShare.scheduler;
    await until(async () => (await waitingOnLock()) === 2, "2 key requests waiting on the lock");
    await until(() => scheduler.queuedOf(`org:${attackerOrg}`) === 8, "8 key requests queued under the organization");
    expect((await victimQuery(server)).body.data.currentUser.id).toBe(victim.userId);
    expect(await waitingOnLock()).toBe(2);
    released = true;
    await lock.release();
    expect((await Promise.all(attacks)).map((r) => r.status)).toEqual(Array(10).fill(200));
  } finally {
    if (!released) await lock.release();
    await server.close();
  }
}, 120_000);

test("anonymous callers are bounded per address and all together (2 in flight by default), and a signed-in tenant is served meanwhile", async () => {
  const server = await startServer(db, patient);
  // Anonymous sign-in attempts count themselves in attempt_counters: held here, each one that
  // reaches the database waits there.
  const client: pg.PoolClient = await db.root.connect();
  await client.query("begin");
  await client.query("lock table app_private.attempt_counters in share row exclusive mode");
  let released = false;
  try {
    const attempts = Array.from({ length: 8 }, (_, i) =>
      postGraphQL(server.url, {
        query: "mutation A($e: String!) { authenticate(input: { email: $e, password: \"wrong password\" }) { jwtToken } }",
        variables: { e: `nobody-${i}@example.com` },
      }),
    );
    const scheduler = server.app.fairShare.scheduler;
    await until(async () => (await waitingOnLock()) === 2, "2 anonymous statements waiting on the lock");
    await until(() => scheduler.queuedOf("addr:127.0.0.1") === 6, "6 anonymous requests queued");
    expect(scheduler.inFlightOf("anonymous")).toBe(2);
    expect((await victimQuery(server)).body.data.currentUser.id).toBe(victim.userId);
    expect(await waitingOnLock()).toBe(2);
    released = true;
    await client.query("commit");
    const results = await Promise.all(attempts);
    expect(results.map((r) => r.status)).toEqual(Array(8).fill(200));
  } finally {
    if (!released) await client.query("rollback");
    client.release();
    await server.close();
  }
}, 120_000);
