// Structured logs: one JSON line per request with its request id (also on the response), job
// log lines carrying the request id of the request that queued them, and no tokens, passwords
// or Stripe secrets anywhere, whatever the request carried. (CI also greps the logs of the
// whole test run: npm run logs:check.)

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { memoryLogger, postGraphQL, startServer, type OpsServer } from "../helpers/operations.ts";
import { findSecrets } from "../../scripts/check-log-secrets.ts";
import { createLogger } from "../../core/logger.ts";
import { startWorker } from "../../workers/runner.ts";

let db: TestDatabase;
let server: OpsServer;
const { logger, lines } = memoryLogger();

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startServer(db, { logger });
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

const PASSWORD = "correct horse battery staple";

test("requests are logged with their request id, and no secret they carried reaches the log", async () => {
  const email = `log-${Date.now()}@example.com`;
  const registered = await postGraphQL(server.url, {
    query: "mutation Register($email: String!, $password: String!) { register(input: { email: $email, password: $password, name: \"Logger\" }) { jwtToken } }",
    variables: { email, password: PASSWORD },
  });
  const token = registered.body.data.register.jwtToken as string;
  expect(token).toMatch(/^eyJ/);
  const signedIn = await postGraphQL(server.url, {
    query: "mutation SignIn { authenticate(input: { email: \"" + email + "\", password: \"" + PASSWORD + "\" }) { jwtToken } }",
  });
  expect(signedIn.body.data.authenticate.jwtToken).toMatch(/^eyJ/);
  const me = await postGraphQL(server.url, { query: "query Me { currentUser { email } }" }, { authorization: `Bearer ${token}`, "x-request-id": "trace-me-1" });
  expect(me.body.data.currentUser.email).toBe(email);
  expect(me.headers.get("x-request-id")).toBe("trace-me-1");
  // a bad token, a Stripe-looking header and secret in the body of a request that fails
  await postGraphQL(server.url, { query: "{ currentUser { id } }" }, { authorization: `Bearer ${token}x` });
  await postGraphQL(
    server.url,
    { query: "query Leak { nope }", variables: { key: "sk_test_51Habcdefghijklmnop", whsec: "whsec_abcdefghijklmnop" } },
    { "stripe-signature": "t=1700000000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd" },
  );
  await postGraphQL(server.url, "{not json", { authorization: `Bearer ${token}` });

  const text = lines.join("");
  expect(findSecrets(text)).toEqual([]);
  expect(text).not.toContain(token);
  expect(text).not.toContain(PASSWORD);
  expect(text).not.toContain("sk_test_");
  expect(text).not.toContain("whsec_");

  const entries = lines.map((line) => JSON.parse(line));
  const requests = entries.filter((e) => e.msg === "request");
  expect(requests.length).toBeGreaterThanOrEqual(6);
  for (const entry of requests) {
    expect(Object.keys(entry).sort()).toEqual(
      expect.arrayContaining(["durationMs", "level", "method", "msg", "pid", "requestId", "route", "status", "time"]),
    );
    expect(entry).not.toHaveProperty("headers");
    expect(entry).not.toHaveProperty("body");
  }
  expect(requests.find((e) => e.requestId === "trace-me-1")).toMatchObject({ operation: "Me", route: "/graphql", status: 200 });
  expect(requests.find((e) => e.operation === "Register")).toMatchObject({ status: 200 });
});

test("redaction censors secret-bearing keys anywhere a caller logs an object", () => {
  const captured: string[] = [];
  const log = createLogger({ level: "info", stream: { write: (l: string) => void captured.push(l) } });
  log.info(
    {
      password: "p1",
      token: "t1",
      user: { password: "p2", apiKey: "k1" },
      req: { headers: { authorization: "Bearer abcdefghijklmnopqrstuvwxyz", cookie: "sid=1", "stripe-signature": "t=1,v1=ab" } },
      variables: { input: { password: "p3" } },
      safe: "kept",
    },
    "object with secrets",
  );
  const entry = JSON.parse(captured[0]);
  expect(entry.password).toBe("[redacted]");
  expect(entry.token).toBe("[redacted]");
  expect(entry.user).toEqual({ password: "[redacted]", apiKey: "[redacted]" });
  expect(entry.req.headers).toEqual({ authorization: "[redacted]", cookie: "[redacted]", "stripe-signature": "[redacted]" });
  expect(entry.variables.input.password).toBe("[redacted]");
  expect(entry.safe).toBe("kept");
});

test("job log lines carry the request id that queued the job; outcomes are counted per task", async () => {
  const jobLog = memoryLogger();
  let ran = 0;
  // Workers connect directly, never through PgBouncer (docs/operations.md, production guide): LISTEN and
  // their liveness lock need a session of their own.
  const runner = await startWorker({
    ownerUrl: db.directOwnerUrl,
    crontab: null,
    pollInterval: 200,
    taskList: {
      log_probe: async (payload: any) => {
        ran += 1;
        if (payload.fail) throw new Error("probe failure");
      },
    },
    operations: {
      ownerUrl: db.directOwnerUrl,
      rootUrl: null,
      backupDir: "/nonexistent",
      backupRetentionDays: 30,
      slowQueryMs: 500,
      pgBinDir: null,
      logger: jobLog.logger,
    },
  });
  try {
    await db.owner.query("select graphile_worker.add_job('log_probe', json_build_object('requestId', 'req-from-http-42'))");
    await db.owner.query("select graphile_worker.add_job('log_probe', json_build_object('fail', true), max_attempts := 1)");
    // Up to 30 s: through PgBouncer (TEST_PGBOUNCER) the worker polls instead of LISTENing.
    for (let i = 0; i < 300 && jobLog.lines.filter((l) => /job (completed|failed)"/.test(l)).length < 2; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await runner.stop();
  }
  const entries = jobLog.lines.map((l) => JSON.parse(l));
  expect(entries.find((e) => e.msg === "job completed")).toMatchObject({ task: "log_probe", requestId: "req-from-http-42" });
  expect(entries.find((e) => e.msg === "job failed")).toMatchObject({ task: "log_probe", error: "probe failure" });
  expect(ran).toBe(2);
  const { rows } = await db.owner.query("select outcome, count::int from app_private.job_counters where task_identifier = 'log_probe' order by outcome");
  expect(rows).toEqual([{ outcome: "completed", count: 1 }, { outcome: "failed", count: 1 }]);
});

test("the request id reaches SQL as the transaction setting tenantbase.request_id, and the jobs a request queues", async () => {
  // A probe function, created before a server starts so that its schema exposes it.
  const probeDb = await createTestDatabase();
  try {
    await probeDb.owner.query(`
      create function app_public.request_id_probe() returns text language sql stable
        as $$ select current_setting('tenantbase.request_id', true) $$;
      grant execute on function app_public.request_id_probe() to app_anonymous;
      create function app_public.queue_probe() returns text language plpgsql volatile security definer
        set search_path = pg_catalog, public
        as $$ begin perform graphile_worker.add_job('probe_task', json_build_object('n', 1)); return 'queued'; end $$;
      grant execute on function app_public.queue_probe() to app_anonymous`);
    const probeServer = await startServer(probeDb, { logger: memoryLogger().logger });
    try {
      const res = await postGraphQL(probeServer.url, { query: "{ requestIdProbe }" }, { "x-request-id": "sql-sees-me-7" });
      expect(res.body).toEqual({ data: { requestIdProbe: "sql-sees-me-7" } });
      const generated = await postGraphQL(probeServer.url, { query: "{ requestIdProbe }" });
      expect(generated.body.data.requestIdProbe).toBe(generated.headers.get("x-request-id"));
      // a job queued inside the request carries the id in its payload (and so in its log lines)
      const queued = await postGraphQL(probeServer.url, { query: "mutation { queueProbe(input: {}) { result } }" }, { "x-request-id": "queued-by-req-9" });
      expect(queued.body).toEqual({ data: { queueProbe: { result: "queued" } } });
      const { rows } = await probeDb.owner.query("select payload from graphile_worker._private_jobs order by id");
      expect(rows).toEqual([{ payload: { n: 1, requestId: "queued-by-req-9" } }]);
      // outside a request nothing is added
      await probeDb.owner.query("select graphile_worker.add_job('probe_task', json_build_object('n', 2))");
      const { rows: later } = await probeDb.owner.query("select payload from graphile_worker._private_jobs order by id desc limit 1");
      expect(later[0].payload).toEqual({ n: 2 });
    } finally {
      await probeServer.close();
    }
  } finally {
    await probeDb.drop();
  }
});

test("graphile-worker's own log lines never carry job payloads", async () => {
  const { graphileLogger } = await import("../../workers/operations.ts");
  const { logger, lines } = memoryLogger();
  const log = graphileLogger(logger).scope({ workerId: "w1" });
  log.info("Completed task 1", { job: { id: "1", task_identifier: "send_invitation_email", attempts: 1, payload: { token: "inv_secret_123", link: "https://x/accept?token=inv_secret_123" } }, duration: 3 });
  const entry = JSON.parse(lines[0]);
  expect(entry).toMatchObject({ worker: "w1", task: "send_invitation_email", jobId: "1", attempt: 1, duration: 3, msg: "Completed task 1" });
  expect(lines[0]).not.toContain("inv_secret_123");
});
