// /healthz, /readyz and /metrics against the shared test cluster: readiness details (both roles,
// migrations, worker heartbeat, backup verification), Prometheus output that parses and carries
// the HTTP, GraphQL, error, job, queue, pool and check series after real traffic.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { createUser } from "../helpers/fixtures.ts";
import { tokenFor } from "../helpers/server.ts";
import { parsePrometheus, postGraphQL, startServer, type OpsServer } from "../helpers/operations.ts";
import { startWorker } from "../../workers/runner.ts";
import type { Runner } from "graphile-worker";

let db: TestDatabase;
let server: OpsServer;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startServer(db, { workerHeartbeatMaxAgeSeconds: 60 });
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

async function readyz() {
  const response = await fetch(`${server.url}/readyz`);
  return { status: response.status, body: (await response.json()) as any };
}

test("/healthz answers while the process is up", async () => {
  const response = await fetch(`${server.url}/healthz`);
  expect(response.status).toBe(200);
  expect(await response.json()).toEqual({ status: "ok" });
});

test("/readyz: both roles reach the database and migrations are current; no worker yet -> degraded", async () => {
  const { status, body } = await readyz();
  expect(status).toBe(200);
  expect(body.status).toBe("degraded");
  expect(body.checks.database_owner).toMatchObject({ ok: true, critical: true });
  expect(body.checks.database_authenticator).toMatchObject({ ok: true, critical: true });
  expect(body.checks.migrations).toEqual({ ok: true, critical: true });
  expect(body.checks.worker).toEqual({ ok: false, critical: false, error: "no worker has reported a heartbeat" });
  expect(body.checks.backup_verification).toMatchObject({ ok: false, error: "no backup has been restore-tested yet" });
});

test("/readyz: a running worker's heartbeat and a good verification make it ready; a stale heartbeat degrades it", async () => {
  const runner: Runner = await startWorker({ ownerUrl: db.directOwnerUrl, crontab: null, taskList: {}, pollInterval: 500 }); // workers connect directly, never through PgBouncer
  try {
    await db.owner.query(
      `insert into app_private.backup_runs (kind, file, ok, details, started_at, finished_at)
       values ('backup', '/x.dump', true, '{}', now(), now()), ('verify', '/x.dump', true, '{"mismatches": []}', now(), now())`,
    );
    let body: any;
    for (let i = 0; i < 50; i++) {
      body = (await readyz()).body;
      if (body.checks.worker.ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(body.status).toBe("ready");
    expect(body.checks.worker).toMatchObject({ ok: true, critical: false, maxAgeSeconds: 60 });
    expect(body.checks.backup_verification).toMatchObject({ ok: true, file: "/x.dump" });
  } finally {
    await runner.stop();
  }
  // a stopped worker removes its heartbeat
  const { rows } = await db.owner.query("select count(*)::int as n from app_private.worker_heartbeats");
  expect(rows[0].n).toBe(0);
  // a worker that died without stopping leaves a stale heartbeat: degraded, not unready
  await db.owner.query(
    `insert into app_private.worker_heartbeats (worker_id, hostname, pid, started_at, last_seen_at)
     values ('crashed', 'web-9', 99, now() - interval '1 hour', now() - interval '5 minutes')`,
  );
  const stale = await readyz();
  expect(stale.status).toBe(200);
  expect(stale.body.status).toBe("degraded");
  expect(stale.body.checks.worker).toMatchObject({ ok: false, workerId: "crashed", maxAgeSeconds: 60 });
  expect(stale.body.checks.worker.ageSeconds).toBeGreaterThanOrEqual(300);
});

test("/readyz in development (backups not required): a fresh install with a worker but no backup yet is ready; a failed backup still degrades", async () => {
  const dev = await startServer(db, { workerHeartbeatMaxAgeSeconds: 60, backupsRequired: false });
  const runner: Runner = await startWorker({ ownerUrl: db.directOwnerUrl, crontab: null, taskList: {}, pollInterval: 500 });
  try {
    await db.owner.query("delete from app_private.backup_runs");
    const ask = async () => (await (await fetch(`${dev.url}/readyz`)).json()) as any;
    let body: any;
    for (let i = 0; i < 50; i++) {
      body = await ask();
      if (body.checks.worker.ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(body.status).toBe("ready");
    expect(body.checks.backup).toEqual({ ok: true, critical: false, note: "no backup has been made yet (not required in development)" });
    expect(body.checks.backup_verification).toMatchObject({ ok: true, note: expect.stringContaining("restore-tested yet") });

    await db.owner.query(
      `insert into app_private.backup_runs (kind, file, ok, details, started_at, finished_at)
       values ('backup', '/failed.dump', false, '{"error": "disk full"}', now(), now())`,
    );
    body = await ask();
    expect(body.status).toBe("degraded");
    expect(body.checks.backup).toMatchObject({ ok: false, file: "/failed.dump" });
  } finally {
    await runner.stop();
    await dev.close();
    await db.owner.query("delete from app_private.backup_runs");
  }
});

test("/readyz is unready (503) when the policies applied are not the ones on disk", async () => {
  await db.owner.query("update app_private.policy_state set hash = 'stale'");
  try {
    const { status, body } = await readyz();
    expect(status).toBe(503);
    expect(body.status).toBe("unready");
    expect(body.checks.migrations).toMatchObject({ ok: false, critical: true });
  } finally {
    const { readSchema } = await import("../../db/apply-schema.ts");
    await db.owner.query("update app_private.policy_state set hash = $1", [readSchema().hash]);
  }
});

test("/metrics parses as Prometheus text and has every series after some traffic", async () => {
  const user = await createUser(db);
  const token = tokenFor(user);
  await postGraphQL(server.url, { query: "query Me { currentUser { email } }" }, { authorization: `Bearer ${token}` });
  await postGraphQL(server.url, { query: "query Me { currentUser { email } }" }, { authorization: `Bearer ${token}` });
  // a business error from SQL (extensions.code from raise_error) and a refused query
  await postGraphQL(
    server.url,
    { query: 'mutation Reg { register(input: { email: "not-an-email", password: "x", name: "X" }) { jwtToken } }' },
  );
  await postGraphQL(server.url, { query: "query Broken { nope }" });
  // a worker outcome and a waiting job, and a credit-ledger check reported by its job
  await db.owner.query("select app_private.count_job('send_invitation_email', 'completed')");
  await db.owner.query("select app_private.count_job('send_invitation_email', 'failed')");
  await db.owner.query("select graphile_worker.add_job('metrics_test_task', '{}')");
  await db.owner.query("select app_private.record_check('credit_ledger', true, '{\"discrepancies\": 0}')");

  const response = await fetch(`${server.url}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  const samples = parsePrometheus(await response.text());
  const find = (name: string, labels: Record<string, string> = {}) =>
    samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));

  expect(find("tenantbase_http_request_duration_seconds_count", { route: "/graphql", method: "POST", status: "200" })[0].value).toBeGreaterThanOrEqual(3);
  expect(find("tenantbase_http_request_duration_seconds_bucket", { route: "/graphql", le: "+Inf" }).length).toBeGreaterThan(0);
  expect(find("tenantbase_graphql_operations_total", { operation: "Me", outcome: "success" })[0].value).toBe(2);
  expect(find("tenantbase_graphql_operations_total", { operation: "Reg", outcome: "error" })[0].value).toBe(1);
  expect(find("tenantbase_graphql_operations_total", { operation: "Broken", outcome: "rejected" })[0].value).toBe(1);
  const codes = find("tenantbase_graphql_errors_total").map((s) => s.labels.code);
  expect(codes).toContain("GRAPHQL_VALIDATION_FAILED");
  expect(codes.filter((c) => /^[A-Z_]+$/.test(c) && c !== "GRAPHQL_VALIDATION_FAILED").length).toBeGreaterThan(0);
  expect(find("tenantbase_jobs_total", { task: "send_invitation_email", outcome: "completed" })[0].value).toBe(1);
  expect(find("tenantbase_jobs_total", { task: "send_invitation_email", outcome: "failed" })[0].value).toBe(1);
  expect(find("tenantbase_job_queue_depth", { task: "metrics_test_task" })[0].value).toBe(1);
  expect(find("tenantbase_db_pool_connections", { pool: "authenticator", state: "total" })[0].value).toBeGreaterThan(0);
  expect(find("tenantbase_check_ok", { check: "credit_ledger" })[0].value).toBe(1);
  expect(find("tenantbase_database_up")[0].value).toBe(1);
  expect(find("tenantbase_process_resident_memory_bytes")[0].value).toBeGreaterThan(0);
});

test("operation names are label-safe: odd names are bucketed, not exported verbatim", async () => {
  await postGraphQL(server.url, { query: "{ __typename }" });
  const text = await (await fetch(`${server.url}/metrics`)).text();
  expect(parsePrometheus(text).some((s) => s.name === "tenantbase_graphql_operations_total" && s.labels.operation === "anonymous")).toBe(true);
});
