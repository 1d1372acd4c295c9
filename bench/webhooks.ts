// npm run bench:webhooks — Stripe webhook intake as production runs it: `npm start` (web only,
// WORKER=off, NODE_ENV=production) and `npm run worker` as separate processes, signed
// checkout.session.completed events (each grants credits to one of 20 organizations) POSTed to
// /webhooks/stripe. For 1 sender and then 16 concurrent senders, prints the accept latency
// (signature check + store + queue, until the 200) and how fast the worker applied them:
// processed events/s = events / (last processed_at − first received_at), from the database.
// Beside them, in the same run, a baseline: the same events stored straight through pg at 16
// senders, one transaction per event (the intake before deliveries were batched).
//
// Env: BENCH_EVENTS (events at 16 senders, default 2000; 1 sender gets a tenth),
// BENCH_SENDERS (default 16), BENCH_WORKERS (standalone worker processes, default 1),
// WORKER_CONCURRENCY (passed to the workers, default the project's), BENCH_ROOT_DATABASE_URL.

import { spawn, type ChildProcess } from "node:child_process";
import os from "node:os";
import pg from "pg";
import Stripe from "stripe";
import { benchDatabase } from "./lib/cluster.ts";
import { freePort } from "../db/ports.ts";
import { projectRoot } from "../core/paths.ts";
import { STRIPE_API_VERSION } from "../server/stripe/client.ts";
import { BENCH_JWT } from "./lib/server.ts";
import { post } from "./lib/http-client.ts";
import { postmasterOf, treeCpuMs } from "./lib/cpu.ts";
import { loadConfig } from "../core/config.ts";

const EVENTS = Number(process.env.BENCH_EVENTS ?? 2000);
const SENDERS = Number(process.env.BENCH_SENDERS ?? 16);
const WORKERS = Number(process.env.BENCH_WORKERS ?? 1);
const SECRET = "whsec_benchsecret0123456789abcdef";
const stripe = new Stripe("sk_test_unused", { apiVersion: STRIPE_API_VERSION });

const db = await benchDatabase("webhooks");
const root = new pg.Pool({ connectionString: db.rootUrl, max: 2 });
root.on("error", () => {});
await root.query("truncate app_private.stripe_events");
await root.query("delete from graphile_worker._private_jobs");
await root.query("delete from app_private.worker_heartbeats");
// BENCH_PG_STATS=1: statements of the measured phases (nested ones too), printed after them.
await root.query(
  process.env.BENCH_PG_STATS
    ? `do $$ begin execute format('alter database %I set pg_stat_statements.track = ''all''', current_database());
         execute format('alter database %I set pg_stat_statements.track_planning = on', current_database()); end $$`
    : `do $$ begin execute format('alter database %I reset pg_stat_statements.track', current_database());
         execute format('alter database %I reset pg_stat_statements.track_planning', current_database()); end $$`,
);

const port = await freePort();
const env: NodeJS.ProcessEnv = {
  PATH: process.env.PATH,
  HOME: process.env.HOME,
  NODE_ENV: "production",
  DATABASE_URL: db.ownerUrl,
  AUTH_DATABASE_URL: db.authUrl,
  JWT_SECRET: BENCH_JWT.secret,
  STRIPE_SECRET_KEY: "sk_test_bench",
  STRIPE_WEBHOOK_SECRET: SECRET,
  WORKER: "off",
  LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? "warn",
  HOST: "127.0.0.1",
  PORT: String(port),
  ...(process.env.WORKER_CONCURRENCY ? { WORKER_CONCURRENCY: process.env.WORKER_CONCURRENCY } : {}),
  ...(process.env.WEB_CONCURRENCY ? { WEB_CONCURRENCY: process.env.WEB_CONCURRENCY } : {}),
  ...(process.env.BENCH_CHILD_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_CHILD_NODE_OPTIONS } : {}),
};

function startProcess(script: string): ChildProcess {
  const child = spawn(process.execPath, [script], { cwd: projectRoot, env, stdio: ["ignore", "inherit", "inherit"] });
  children.push(child);
  child.once("exit", (code) => {
    if (code !== 0 && !stopping) {
      console.error(`${script} exited with ${code}`);
      process.exit(1);
    }
  });
  return child;
}

async function until(what: string, fn: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (!(await fn().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what}: not ready after 120 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// Production start: web process and workers (LOG_LEVEL=warn, so readiness is asked, not read).
let stopping = false;
// Never leave the server and workers running when this script fails.
const children: ChildProcess[] = [];
process.on("exit", () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
});
const server = startProcess("server/main.ts");
const workers = Array.from({ length: WORKERS }, () => startProcess("workers/main.ts"));
await until("server", async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok);
await until("workers", async () => {
  const { rows } = await root.query("select count(*)::int as n from app_private.worker_heartbeats where last_seen_at > now() - interval '1 minute'");
  return rows[0].n >= WORKERS;
});
const base = `http://127.0.0.1:${port}`;
const postmaster = postmasterOf((await root.query("select pg_backend_pid() as pid")).rows[0].pid);
/** CPU ms so far: this process (the load generator), the web process(es), the workers, PostgreSQL. */
function cpuNow(): { bench: number; web: number | null; worker: number | null; postgres: number | null } {
  const usage = process.cpuUsage();
  const [web, postgres, ...perWorker] = treeCpuMs([server.pid!, postmaster ?? -1, ...workers.map((w) => w.pid!)]);
  const worker = perWorker.some((ms) => ms === null) ? null : perWorker.reduce((a: number, b) => a + b!, 0);
  return { bench: (usage.user + usage.system) / 1000, web, worker, postgres };
}
// Deliveries go through node:http with a keep-alive agent (bench/lib/http-client.ts): fetch cost
// the load generator about twice the CPU per request, which the server and PostgreSQL then lacked.
const webhookUrl = new URL(`${base}/webhooks/stripe`);

// 20 organizations and a credit package to buy.
const organizations: string[] = [];
{
  const owner = new pg.Pool({ connectionString: db.ownerUrl, max: 1 });
  const { rows } = await owner.query(
    `insert into app_public.credit_packages (name, credits, stripe_price_id) values ('bench pack', 10, 'price_bench_pack')
     on conflict (stripe_price_id) do update set name = excluded.name returning id`,
  );
  const packageId = rows[0].id;
  const { rows: orgs } = await owner.query("select id from app_public.organizations where name like 'Webhook bench %' order by name");
  organizations.push(...orgs.map((r) => r.id));
  await owner.end();
  if (organizations.length < 20) {
    const gql = async (query: string, variables: object, token?: string) => {
      const response = await fetch(`${base}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify({ query, variables }),
      });
      const body = (await response.json()) as any;
      if (body.errors) throw new Error(JSON.stringify(body.errors));
      return body.data;
    };
    // One owner per organization (an owner may have only a few organizations on the free plan).
    for (let i = organizations.length; i < 20; i++) {
      const email = `bench-${Date.now()}-${i}@webhooks.example`;
      const { register } = await gql(`mutation($e: String!) { register(input: {email: $e, password: "bench password", name: "Bench"}) { jwtToken } }`, { e: email });
      const data = await gql(`mutation($n: String!) { createOrganization(input: {name: $n}) { organization { id } } }`, { n: `Webhook bench ${String(i).padStart(2, "0")}` }, register.jwtToken);
      organizations.push(data.createOrganization.organization.id);
    }
  }
  (globalThis as any).packageId = packageId;
}
const packageId: string = (globalThis as any).packageId;

const run = `${process.pid}x${Date.now()}`;
let n = 0;
function signedEvent(): { payload: string; header: string; id: string } {
  n += 1;
  const id = `evt_bench${run}n${n}`;
  const event = {
    id,
    object: "event",
    api_version: STRIPE_API_VERSION,
    created: 1_790_000_000 + n,
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type: "checkout.session.completed",
    data: {
      object: {
        id: `cs_test_bench${run}n${n}`,
        object: "checkout.session",
        mode: "payment",
        status: "complete",
        payment_status: "paid",
        customer: `cus_bench${n % 20}`,
        currency: "usd",
        amount_total: 900,
        metadata: { organization_id: organizations[n % 20], credit_package_id: packageId },
      },
    },
  };
  const payload = JSON.stringify(event);
  return { payload, header: stripe.webhooks.generateTestHeaderString({ payload, secret: SECRET }), id };
}

let retries = 0;

interface Phase {
  label: string;
  senders: number;
  events: number;
  acceptP50: number;
  acceptP99: number;
  acceptedPerSecond: number;
  processedPerSecond: number;
  drainSeconds: number;
  /** CPU ms per event, from the first delivery until every event was applied. */
  cpu: Record<string, number | null>;
}

// The baseline: the same events stored straight through pg, one transaction per event, as the
// intake did before deliveries were batched (no HTTP, no signature check: a floor for that design).
const direct = new pg.Pool({ connectionString: db.ownerUrl, max: SENDERS });
direct.on("error", () => {});
async function storeDirectly(payload: string): Promise<void> {
  await direct.query("select app_private.receive_stripe_event($1::jsonb)", [payload]);
}

async function phase(senders: number, events: number, via: "http" | "sql" = "http"): Promise<Phase> {
  const prepared = Array.from({ length: events }, signedEvent);
  const ids = prepared.map((e) => e.id);
  const latencies: number[] = [];
  let next = 0;
  const cpuBefore = cpuNow();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: senders }, async () => {
      while (next < prepared.length) {
        const { payload, header } = prepared[next++];
        const t = performance.now();
        if (via === "sql") {
          await storeDirectly(payload);
          latencies.push(performance.now() - t);
          continue;
        }
        // A keep-alive socket the server closed just as it was reused fails with ECONNRESET:
        // deliver again, as Stripe would (the intake is idempotent); counted and printed.
        for (let attempt = 1; ; attempt++) {
          try {
            const response = await post(webhookUrl, payload, { "content-type": "application/json", "stripe-signature": header });
            if (response.status !== 200) throw new Error(`delivery answered ${response.status}`);
            break;
          } catch (error) {
            if (attempt >= 3 || (error as Error).message.startsWith("delivery answered")) throw error;
            retries += 1;
          }
        }
        latencies.push(performance.now() - t);
      }
    }),
  );
  const acceptSeconds = (performance.now() - started) / 1000;
  // Wait for the worker(s) to apply every event.
  for (;;) {
    const { rows } = await root.query("select count(*)::int as n from app_private.stripe_events where id = any($1) and processed_at is not null", [ids]);
    if (rows[0].n === events) break;
    if (performance.now() - started > 300_000) throw new Error(`only ${rows[0].n} of ${events} processed after 300 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const drainSeconds = (performance.now() - started) / 1000;
  const cpuAfter = cpuNow();
  const cpu = Object.fromEntries(
    Object.entries(cpuBefore).map(([k, v]) => {
      const after = cpuAfter[k as keyof typeof cpuAfter];
      return [k, v === null || after === null ? null : (after - v) / events];
    }),
  );
  const { rows } = await root.query(
    `select extract(epoch from max(processed_at) - min(received_at))::float8 as span,
            count(*) filter (where outcome = 'applied')::int as applied
     from app_private.stripe_events where id = any($1)`,
    [ids],
  );
  if (rows[0].applied !== events) throw new Error(`${rows[0].applied} of ${events} applied`);
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)];
  return {
    label: via === "sql" ? `${senders} (SQL, 1 tx/event)` : String(senders),
    senders,
    events,
    acceptP50: pct(50),
    acceptP99: pct(99),
    acceptedPerSecond: events / acceptSeconds,
    processedPerSecond: events / Math.max(rows[0].span, 0.001),
    drainSeconds,
    cpu,
  };
}

// What the children run with (the same validation and defaults as theirs).
const childConfig = loadConfig(env);
console.log(
  `bench:webhooks — ${os.cpus().length} cores, load average ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}; ` +
    `web: WORKER=off, WEB_CONCURRENCY=${childConfig.webConcurrency}${env.WEB_CONCURRENCY ? "" : " (default)"}; ` +
    `${WORKERS} worker process(es), WORKER_CONCURRENCY=${childConfig.workerConcurrency}${env.WORKER_CONCURRENCY ? "" : " (default)"}; ` +
    `checkout.session.completed events granting credits to 20 organizations`,
);
// Warm-up at the measured concurrency (JIT, pools, plans): after a 4-sender warm-up the first
// ~300 ms of the 16-sender phase answered 2-3 times slower than the rest of it, and a second
// 16-sender phase run right after it did not.
await phase(SENDERS, Math.max(100, Math.round(EVENTS / 4)));
// BENCH_PG_STATS=1 also samples what the database's sessions wait on during the phases.
const waits = new Map<string, number>();
let sampling: NodeJS.Timeout | null = null;
if (process.env.BENCH_PG_STATS) {
  await root.query("create extension if not exists pg_stat_statements");
  await root.query("select pg_stat_statements_reset()");
  let busy = false;
  sampling = setInterval(() => {
    if (busy) return;
    busy = true;
    root
      .query(
        `select coalesce(wait_event_type || ':' || wait_event, 'CPU') || '  ' || left(regexp_replace(query, '\\s+', ' ', 'g'), 70) as k
         from pg_stat_activity where datname = current_database() and state = 'active' and pid <> pg_backend_pid()`,
      )
      .then(({ rows }) => rows.forEach((r) => waits.set(r.k, (waits.get(r.k) ?? 0) + 1)))
      .catch(() => {})
      .finally(() => (busy = false));
  }, 10);
}
/** Processing capacity alone: the workers are paused (SIGSTOP) while `events` are stored, then resumed. */
let backlogCpu = null as ReturnType<typeof cpuNow> | null;
async function backlogDrain(events: number): Promise<number> {
  const prepared = Array.from({ length: events }, signedEvent);
  for (const child of workers) child.kill("SIGSTOP");
  try {
    let next = 0;
    await Promise.all(Array.from({ length: SENDERS }, async () => {
      while (next < prepared.length) await storeDirectly(prepared[next++].payload);
    }));
  } finally {
    for (const child of workers) child.kill("SIGCONT");
  }
  const resumed = Date.now();
  const cpuBefore = cpuNow();
  const ids = prepared.map((e) => e.id);
  for (;;) {
    const { rows } = await root.query("select count(*)::int as n from app_private.stripe_events where id = any($1) and processed_at is not null", [ids]);
    if (rows[0].n === events) break;
    if (Date.now() - resumed > 300_000) throw new Error(`backlog: only ${rows[0].n} of ${events} processed after 300 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const cpuAfter = cpuNow();
  backlogCpu = Object.fromEntries(
    Object.entries(cpuBefore).map(([k, v]) => {
      const after = cpuAfter[k as keyof typeof cpuAfter];
      return [k, v === null || after === null ? null : (after - v) / events];
    }),
  ) as ReturnType<typeof cpuNow>;
  const { rows } = await root.query(
    "select extract(epoch from max(processed_at))::float8 * 1000 as last from app_private.stripe_events where id = any($1)", [ids]);
  return events / ((rows[0].last - resumed) / 1000);
}

const results = [
  await phase(1, Math.max(50, Math.round(EVENTS / 10))),
  await phase(SENDERS, EVENTS),
  await phase(SENDERS, EVENTS, "sql"),
];
console.log(`\n  ${"senders".padEnd(20)} ${"events".padStart(7)} ${"accept p50 ms".padStart(14)} ${"accept p99 ms".padStart(14)} ${"accepted/s".padStart(11)} ${"processed/s".padStart(12)} ${"all applied after s".padStart(20)}`);
for (const r of results) {
  console.log(
    `  ${r.label.padEnd(20)} ${String(r.events).padStart(7)} ${r.acceptP50.toFixed(2).padStart(14)} ${r.acceptP99.toFixed(2).padStart(14)} ${r.acceptedPerSecond.toFixed(1).padStart(11)} ${r.processedPerSecond.toFixed(1).padStart(12)} ${r.drainSeconds.toFixed(2).padStart(20)}`,
  );
}
if (process.env.BENCH_PG_STATS) {
  const { rows } = await root.query(
    `select calls, round(total_exec_time::numeric, 1) as exec_ms, round(total_plan_time::numeric, 1) as plan_ms, plans, rows, left(regexp_replace(query, '\\s+', ' ', 'g'), 140) as query
     from pg_stat_statements where dbid = (select oid from pg_database where datname = current_database())
     order by total_exec_time + total_plan_time desc limit 40`);
  console.table(rows);
  clearInterval(sampling!);
  console.log("  active sessions sampled every 10 ms (wait event, statement):");
  for (const [k, n] of [...waits].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`  ${String(n).padStart(6)}  ${k}`);
}
if (results.every((r) => Object.values(r.cpu).every((v) => v !== null))) {
  console.log(`\n  CPU ms per event, first delivery to last applied (${os.cpus().length} cores = ${((os.cpus().length * 1000) / 500).toFixed(1)} ms per event at 500/s):`);
  console.log(`  ${"senders".padEnd(20)} ${"load generator".padStart(15)} ${"web".padStart(7)} ${"worker".padStart(7)} ${"PostgreSQL".padStart(11)} ${"total".padStart(7)}`);
  for (const r of results) {
    const c = r.cpu as Record<string, number>;
    console.log(`  ${r.label.padEnd(20)} ${c.bench.toFixed(2).padStart(15)} ${c.web.toFixed(2).padStart(7)} ${c.worker.toFixed(2).padStart(7)} ${c.postgres.toFixed(2).padStart(11)} ${(c.bench + c.web + c.worker + c.postgres).toFixed(2).padStart(7)}`);
  }
}
const drained = await backlogDrain(EVENTS);
console.log(`  backlog of ${EVENTS} events (workers paused while it was stored, then resumed): applied at ${drained.toFixed(1)} events/s`);
if (backlogCpu && backlogCpu.web !== null && backlogCpu.worker !== null && backlogCpu.postgres !== null) {
  console.log(`  CPU ms per event while the backlog drained (processing only): worker ${backlogCpu.worker.toFixed(2)}, PostgreSQL ${backlogCpu.postgres.toFixed(2)}, web ${backlogCpu.web.toFixed(2)}`);
}
console.log("  (the SQL row is the baseline: the old one-transaction-per-event intake without HTTP, measured in this run)");
const bad = await root.query("select count(*)::int as n from app_private.credit_ledger_discrepancies()");
console.log(`\n  ledger check after the run: ${bad.rows[0].n === 0 ? "every balance equals its ledger" : `${bad.rows[0].n} organizations DIFFER`}`);
console.log(`  deliveries retried after a connection reset: ${retries}`);
console.log(`  load average after: ${os.loadavg().map((l) => l.toFixed(1)).join(" ")}`);

stopping = true;
for (const child of [server, ...workers]) child.kill("SIGTERM");
await Promise.all([server, ...workers].map((child) => new Promise((resolve) => child.once("exit", resolve))));
await root.end();
await direct.end();
await db.stop();
