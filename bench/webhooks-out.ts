// npm run bench:webhooks-out — outbound webhooks delivered by the real worker (in this process,
// WORKER_CONCURRENCY slots, default 4) to a local receiver, in one run:
//   1. baseline: organization A's events (each emitted by its own committed transaction, through
//      app_private.emit_webhook_event, BENCH_WRITERS writers at BENCH_RATE events/s in all);
//   2. the same load for A while organization B's endpoint hangs (answers after BENCH_HANG_MS,
//      default 30 s; the delivery timeout is WEBHOOK_TIMEOUT_MS, 15 s) with BENCH_HANG_MESSAGES
//      (default 1,000) messages queued for it before A's load starts.
// Printed for each phase: A's deliveries per second and commit-to-delivery latency p50 / p99 / max
// (from the COMMIT's return in the writer to the request's arrival at the receiver), and for
// phase 2 how many requests B's endpoint got and the most it had in flight at once.
// Env: BENCH_EVENTS (per phase, default 500), BENCH_RATE (default 50), BENCH_WRITERS (default 4),
// BENCH_HANG_MS, BENCH_HANG_MESSAGES, WORKER_CONCURRENCY, BENCH_ROOT_DATABASE_URL.

import http from "node:http";
import type { AddressInfo } from "node:net";
import pg from "pg";
import { benchDatabase } from "./lib/cluster.ts";
import { startWorker } from "../workers/runner.ts";
import { withSettings } from "../db/transaction.ts";

const EVENTS = Number(process.env.BENCH_EVENTS ?? 500);
const RATE = Number(process.env.BENCH_RATE ?? 50);
const WRITERS = Number(process.env.BENCH_WRITERS ?? 4);
const HANG_MS = Number(process.env.BENCH_HANG_MS ?? 30_000);
const HANG_MESSAGES = Number(process.env.BENCH_HANG_MESSAGES ?? 1000);
const CONCURRENCY = Number(process.env.WORKER_CONCURRENCY ?? 4);
process.env.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = "true";
process.env.LOG_LEVEL ??= "warn";

const db = await benchDatabase("webhooks-out");
const owner = new pg.Pool({ connectionString: db.ownerUrl, max: WRITERS + 2 });
const auth = new pg.Pool({ connectionString: db.authUrl, max: 2 });
for (const pool of [owner, auth]) pool.on("error", () => {});
await owner.query("delete from graphile_worker._private_jobs");
await owner.query("update app_private.webhook_settings set allow_http = true, allow_private_addresses = true");

// the receiver: A's path answers at once; B's answers after HANG_MS
const now = () => performance.timeOrigin + performance.now();
const arrivals = new Map<string, number>();
let bRequests = 0;
let bInFlight = 0;
let bMaxInFlight = 0;
const open = new Set<http.ServerResponse>();
const server = http.createServer((req, res) => {
  const id = String(req.headers["webhook-id"] ?? "");
  req.resume();
  if (req.url === "/b") {
    bRequests++;
    bMaxInFlight = Math.max(bMaxInFlight, ++bInFlight);
    open.add(res);
    const timer = setTimeout(() => res.end("late"), HANG_MS);
    res.on("close", () => {
      clearTimeout(timer);
      bInFlight--;
      open.delete(res);
    });
    return;
  }
  if (!arrivals.has(id)) arrivals.set(id, now());
  res.writeHead(204).end();
});
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

async function organization(label: string, path: string): Promise<string> {
  const { rows } = await owner.query(
    `with u as (insert into app_public.users (email, name, email_verified_at) values ($1, $2, now()) returning id)
     insert into app_private.sessions (user_id, expires_at) select id, now() + interval '1 day' from u returning user_id, id`,
    [`bench-${label}-${Date.now()}@example.com`, `Bench ${label}`],
  );
  const settings = { role: "app_user", "jwt.claims.user_id": rows[0].user_id, "jwt.claims.session_id": rows[0].id };
  return withSettings(auth, settings, async (client) => {
    const org = (await client.query("select id from app_public.create_organization($1)", [`Webhooks bench ${label}`])).rows[0].id;
    await client.query("select app_hidden.start_request()");
    await client.query("select app_public.create_webhook_endpoint($1, $2)", [org, base + path]);
    return org as string;
  });
}
const orgA = await organization("A", "/a");
const orgB = await organization("B", "/b");

const worker = await startWorker({ ownerUrl: db.ownerUrl, concurrency: CONCURRENCY, crontab: null, pollInterval: 500 });

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** EVENTS events of A at RATE/s over WRITERS writers; resolves when all are delivered. */
async function phase(name: string, events = EVENTS, print = true) {
  const commits = new Map<string, number>();
  let next = 0;
  const start = now();
  const writer = async () => {
    for (;;) {
      const i = next++;
      if (i >= events) return;
      const due = start + (i * 1000) / RATE;
      if (due > now()) await new Promise((r) => setTimeout(r, due - now()));
      const client = await owner.connect();
      try {
        await client.query("begin");
        const { rows } = await client.query("select app_private.emit_webhook_event($1, 'credits.low_balance', '{\"balance\": 1, \"threshold\": 2}') as id", [orgA]);
        await client.query("commit");
        commits.set(rows[0].id, now());
      } finally {
        client.release();
      }
    }
  };
  await Promise.all(Array.from({ length: WRITERS }, writer));
  while ([...commits.keys()].some((id) => !arrivals.has(id))) await new Promise((r) => setTimeout(r, 50));
  if (!print) return;
  const latencies = [...commits].map(([id, at]) => arrivals.get(id)! - at).sort((x, y) => x - y);
  const last = Math.max(...[...commits.keys()].map((id) => arrivals.get(id)!));
  console.log(
    `| ${name} | ${events} | ${(events / ((last - start) / 1000)).toFixed(1)} | ${percentile(latencies, 50).toFixed(0)} | ${percentile(latencies, 99).toFixed(0)} | ${latencies[latencies.length - 1].toFixed(0)} |`,
  );
}

console.log(`worker concurrency ${CONCURRENCY}, ${EVENTS} events per phase at ${RATE}/s from ${WRITERS} writers; B hangs ${HANG_MS} ms with ${HANG_MESSAGES} queued`);
console.log("| phase | A events | A deliveries/s | A p50 ms | A p99 ms | A max ms |");
console.log("| --- | --- | --- | --- | --- | --- |");
try {
  await phase("warm-up", Math.min(20, EVENTS), false);
  await phase("baseline");
  await owner.query(
    "select app_private.emit_webhook_event($1, 'credits.low_balance', '{\"balance\": 1, \"threshold\": 2}') from generate_series(1, $2)",
    [orgB, HANG_MESSAGES],
  );
  while (bRequests === 0) await new Promise((r) => setTimeout(r, 50));
  await phase(`B hanging (${HANG_MESSAGES} queued)`);
  console.log(`B's endpoint: ${bRequests} requests during the run, at most ${bMaxInFlight} in flight at once`);
} finally {
  await worker.stop();
  for (const res of open) res.destroy();
  server.closeAllConnections();
  server.close();
  // (each run makes its own two organizations; their endpoints go, so later runs deliver nothing to them)
  await owner.query("delete from app_public.webhook_endpoints where organization_id = any ($1)", [[orgA, orgB]]).catch(() => {});
  await owner.end();
  await auth.end();
  await db.stop();
}
