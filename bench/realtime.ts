// npm run bench:realtime — GraphQL subscriptions under load: 1,000 websocket subscribers (graphql-ws)
// across 100 organizations, 10 per organization, each on generationUpdated of its organization.
// Writers start generations through `pg` as members (one commit = one notification, fanned out to
// the organization's 10 subscribers: checked once for all of them, then each read under its own
// settings, the ten reads in one transaction; server/realtime/hub.ts, delivery.ts). Printed: the
// writers' commit rate without subscribers (the baseline, measured before and after) and with
// them, deliveries per second, and latency from COMMIT sent to the message at the client, p50/p99.
// Two loads with subscribers: paced at BENCH_RATE events/s (default 20, i.e. 200 messages/s: the
// latency of a system keeping up) and closed-loop (writers as fast as they can: where delivery
// saturates, and the latency of a backlog).
// Env: BENCH_SECONDS (default 10), BENCH_WRITERS (default 8), BENCH_SUBSCRIBERS (default 1000),
// BENCH_RATE (default 20), BENCH_POOL_SIZE (server pool, default 16).

import pg from "pg";
import WebSocket from "ws";
import { createClient, type Client } from "graphql-ws";
import { ensureDataset } from "./lib/dataset.ts";
import { benchToken, startBenchServer } from "./lib/server.ts";
import { authPool, benchMembers } from "./lib/sql.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const WRITERS = Number(process.env.BENCH_WRITERS ?? 8);
const SUBSCRIBERS = Number(process.env.BENCH_SUBSCRIBERS ?? 1000);
const RATE = Number(process.env.BENCH_RATE ?? 20);
const ORGS = 100;
process.env.REALTIME_MAX_CONNECTIONS_PER_USER ??= String(Math.ceil(SUBSCRIBERS / ORGS));

const db = await ensureDataset("realtime", { organizations: ORGS, projectsPerOrganization: 1, generations: 0, bigOrganizationGenerations: 0, days: 1 });
const owner = new pg.Client({ connectionString: db.ownerUrl });
await owner.connect();
await owner.query(`select app_private.grant_credits(organization_id, 1000000000000, 'manual', null, 'bench-topup-' || $1) from app_private.bench_org`, [`${Date.now()}`]);
const projects = new Map<string, string>(
  (await owner.query("select organization_id, min(id::text) as id from app_public.projects group by 1")).rows.map((r) => [r.organization_id, r.id]),
);
await owner.end();
const members = (await benchMembers(db.ownerUrl)).slice(0, ORGS);
const pool = authPool(db.authUrl, WRITERS);
const now = () => performance.timeOrigin + performance.now();
const commitSent = new Map<string, number>();
let seq = 0;
const run = `${process.pid}-${Date.now()}`;

/** One event: start a generation as a member; the time just before COMMIT is sent is recorded. */
async function commitOne(i: number, record: boolean) {
  const m = members[i % members.length];
  const client = await pool.connect();
  try {
    await client.query("begin");
    await client.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true), set_config('jwt.claims.session_id', $2, true)", [m.userId, m.sessionId]);
    const { rows } = await client.query("select id from app_public.start_generation($1, $2, 'image', 'bench', '{}', 1, $3)", [
      m.organizationId, projects.get(m.organizationId), `rt-${run}-${seq++}`,
    ]);
    if (record) commitSent.set(rows[0].id, now());
    await client.query("commit");
  } catch (error) {
    await client.query("rollback").catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

/** Closed loop (rate 0) or paced: event k is started at k / rate seconds. */
async function writers(record: boolean, rate = 0): Promise<{ events: number; seconds: number }> {
  let events = 0;
  let i = 0;
  const started = performance.now();
  const deadline = started + SECONDS * 1000;
  await Promise.all(Array.from({ length: WRITERS }, async () => {
    while (performance.now() < deadline) {
      const k = i++;
      if (rate > 0) {
        const due = started + (k / rate) * 1000;
        if (due >= deadline) break;
        if (due > performance.now()) await new Promise((r) => setTimeout(r, due - performance.now()));
      }
      await commitOne(k, record);
      events++;
    }
  }));
  return { events, seconds: (performance.now() - started) / 1000 };
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];

console.log(`bench:realtime — ${SUBSCRIBERS} subscribers over ${ORGS} organizations (${SUBSCRIBERS / ORGS} each), ${WRITERS} writers, ${SECONDS} s per phase`);
const before = await writers(false);
console.log(`  baseline (no subscribers): ${(before.events / before.seconds).toFixed(1)} commits/s`);

const server = await startBenchServer(db.ownerUrl, db.authUrl, Number(process.env.BENCH_POOL_SIZE ?? 16));
const wsUrl = server.url.replace(/^http/, "ws");
const latencies: number[] = [];
let delivered = 0;
let measuring = false;
const clients: Client[] = [];
const ready: Promise<void>[] = [];
const connectStarted = performance.now();
for (let s = 0; s < SUBSCRIBERS; s++) {
  const m = members[s % members.length];
  const client = createClient({ url: wsUrl, webSocketImpl: WebSocket, lazy: false, retryAttempts: 0, connectionParams: { Authorization: `Bearer ${benchToken(m.userId, m.sessionId)}` }, onNonLazyError: () => {} });
  clients.push(client);
  ready.push(new Promise<void>((resolve, reject) => {
    client.subscribe<{ generationUpdated: { generationId: string | null; generation: { status: string } | null } }>(
      { query: "subscription ($o: UUID!) { generationUpdated(organizationId: $o) { initial generationId generation { status } } }", variables: { o: m.organizationId } },
      {
        next: (message) => {
          const update = message.data?.generationUpdated;
          if (!update || update.generationId === null) return resolve();
          if (!measuring) return;
          const sent = commitSent.get(update.generationId);
          if (sent !== undefined) {
            latencies.push(now() - sent);
            delivered++;
          }
        },
        error: (error: any) => reject(new Error(`subscriber ${s}: ${error?.code ?? ""} ${error?.reason ?? JSON.stringify(error)}`)),
        complete: () => {},
      },
    );
  }));
  // Clients arrive in waves of 100 (not all in one instant: an overloaded event loop would let
  // graphql-ws's 3 s connection_init timer fire before the init message is read).
  if (ready.length % 100 === 0) await Promise.all(ready);
}
await Promise.all(ready);
console.log(`  ${SUBSCRIBERS} subscribers connected and live in ${((performance.now() - connectStarted) / 1000).toFixed(1)} s`);

async function measured(rate: number) {
  latencies.length = 0;
  delivered = 0;
  measuring = true;
  const during = await writers(true, rate);
  const expected = during.events * (SUBSCRIBERS / ORGS);
  const drainStarted = performance.now();
  while (delivered < expected && performance.now() - drainStarted < 60_000) await new Promise((r) => setTimeout(r, 100));
  const deliverySeconds = during.seconds + (performance.now() - drainStarted) / 1000;
  measuring = false;
  latencies.sort((a, b) => a - b);
  return { during, expected, delivered, deliverySeconds, p50: pct(latencies, 50), p99: pct(latencies, 99), max: latencies[latencies.length - 1] };
}
const paced = await measured(RATE);
const closed = await measured(0);
await Promise.all(clients.map((c) => c.dispose()));
await server.stop();
const after = await writers(false);
await pool.end();

const baseline = (before.events / before.seconds + after.events / after.seconds) / 2;
console.log(`\n  commits/s without subscribers (baseline, before / after): ${(before.events / before.seconds).toFixed(1)} / ${(after.events / after.seconds).toFixed(1)}`);
for (const [label, r] of [[`paced at ${RATE} events/s`, paced], ["closed loop (as fast as the writers go)", closed]] as const) {
  console.log(`  ${label}:`);
  console.log(`    commits/s ${(r.during.events / r.during.seconds).toFixed(1)} (${((r.during.events / r.during.seconds) / baseline).toFixed(2)} of baseline); ` +
    `delivered ${r.delivered} of ${r.expected} messages (${r.during.events} events x ${SUBSCRIBERS / ORGS}), ${(r.delivered / r.deliverySeconds).toFixed(1)} messages/s over ${r.deliverySeconds.toFixed(1)} s`);
  console.log(`    COMMIT sent -> message at client: p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, max ${r.max.toFixed(1)} ms`);
}
process.exit(0);
