// `node server/main.ts` as production runs it (DATABASE_URL + AUTH_DATABASE_URL, JSON logs), then
// SIGTERM while a request is in flight: the server stops accepting connections at once, the
// in-flight request still gets its answer, pools close, the process exits 0. With a request
// stuck past SHUTDOWN_TIMEOUT_MS, the process exits 1 at the deadline instead of hanging.
// Also: without pg_stat_statements the start-up log carries one clear warning.

import { spawn, type ChildProcess } from "node:child_process";
import { request } from "node:http";
import pg from "pg";
import { projectRoot } from "../../core/paths.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { createUser } from "../helpers/fixtures.ts";
import { TEST_JWT, tokenFor } from "../helpers/server.ts";
import { freePort } from "../../db/ports.ts";

jest.setTimeout(120_000);

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());


interface Started {
  child: ChildProcess;
  output: string[];
  port: number;
  exit: Promise<number | null>;
}

async function start(extraEnv: Record<string, string> = {}): Promise<Started> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_ENV: "development", WORKER: "off", ...extraEnv };
  for (const name of ["LOG_FILE", "ROOT_DATABASE_URL", "TEST_ROOT_DATABASE_URL", "TEST_PGBOUNCER"]) delete env[name];
  Object.assign(env, {
    DATABASE_URL: db.ownerUrl,
    AUTH_DATABASE_URL: db.authUrl,
    JWT_SECRET: TEST_JWT.secret,
    PORT: String(port),
    HOST: "127.0.0.1",
    LOG_LEVEL: "info",
  });
  const child = spawn(process.execPath, ["server/main.ts"], { cwd: projectRoot, env, stdio: ["ignore", "pipe", "pipe"] });
  const output: string[] = [];
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output.push(chunk.toString());
      if (output.join("").includes("GraphQL:")) resolve();
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", (chunk: Buffer) => output.push(chunk.toString()));
    void exit.then((code) => reject(new Error(`server exited with ${code}:\n${output.join("")}`)));
  });
  return { child, output, port, exit };
}

async function lockUsers(): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: db.rootUrl });
  await client.connect();
  await client.query("begin");
  await client.query("lock table app_public.users in access exclusive mode");
  return client;
}

async function waitForLockWaiter(): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const { rows } = await db.root.query(
      "select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
    );
    if (rows[0].n > 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("the request never reached the database");
}

function logLines(output: string[]) {
  return output
    .join("")
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line));
}

// With WEB_CONCURRENCY=2 the same contract holds: a connection made during the drain is refused
// at once, never left hanging (node:cluster's round robin left one unanswered until the primary
// exited, past the statement timeout of the in-flight request; server/cluster.ts).
test.each([["1 process", "1"], ["WEB_CONCURRENCY=2", "2"]])("%s — SIGTERM: stop accepting, finish the in-flight request, close pools, exit 0; one pg_stat_statements warning", async (_label, processes) => {
  // A deadline far away: on a loaded machine the steps below may take a while.
  const server = await start({ SHUTDOWN_TIMEOUT_MS: "120000", WEB_CONCURRENCY: processes });
  const user = await createUser(db);
  const lock = await lockUsers();
  let released = false;
  try {
    const inFlight = fetch(`http://127.0.0.1:${server.port}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${tokenFor(user)}` },
      body: JSON.stringify({ query: "{ currentUser { email } }" }),
    });
    await waitForLockWaiter();
    // a keep-alive connection that a client (or load balancer) keeps reusing must not hold the
    // server open: after SIGTERM it is answered with Connection: close, then new ones are refused
    expect((await fetch(`http://127.0.0.1:${server.port}/healthz`)).status).toBe(200);
    server.child.kill("SIGTERM");
    let refused = false;
    for (let i = 0; i < 600 && !refused; i++) {
      refused = await fetch(`http://127.0.0.1:${server.port}/healthz`).then(() => false, () => true);
      if (!refused) await new Promise((r) => setTimeout(r, 50));
    }
    if (!refused) throw new Error(`still accepting after SIGTERM:\n${server.output.join("")}`);
    await lock.query("rollback");
    released = true;
    const response = await inFlight.catch((error) => {
      throw new Error(`in-flight request lost (${error.cause?.message ?? error.message}):\n${server.output.join("")}`);
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ data: { currentUser: { email: user.email } } });
    expect(await server.exit).toBe(0);
  } finally {
    if (!released) await lock.query("rollback").catch(() => {});
    await lock.end();
    server.child.kill("SIGKILL");
  }
  const lines = logLines(server.output);
  expect(lines.filter((l) => /pg_stat_statements is not available/.test(l.msg))).toHaveLength(1);
  expect(lines.find((l) => /SIGTERM: shutting down/.test(l.msg))).toMatchObject({ signal: "SIGTERM", level: 30 });
  // the shutdown ends with "stopped cleanly" (a request's own log line, written when its response
  // finishes, may land just after it: the order of those two is not part of the contract)
  const sigterm = lines.findIndex((l) => /SIGTERM: shutting down/.test(l.msg));
  const stopped = lines.findIndex((l) => l.msg === "stopped cleanly");
  expect(stopped).toBeGreaterThan(sigterm);
  expect(lines.slice(stopped + 1).filter((l) => l.msg !== "request")).toEqual([]);
});

test("SIGTERM with a request stuck past SHUTDOWN_TIMEOUT_MS: exits 1 at the deadline", async () => {
  const server = await start({ SHUTDOWN_TIMEOUT_MS: "1000" });
  const user = await createUser(db);
  const lock = await lockUsers();
  try {
    const inFlight = fetch(`http://127.0.0.1:${server.port}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${tokenFor(user)}` },
      body: JSON.stringify({ query: "{ currentUser { email } }" }),
    }).then(
      (r) => r.status,
      () => "connection closed",
    );
    await waitForLockWaiter();
    server.child.kill("SIGTERM");
    const code = await server.exit;
    if (code !== 1) throw new Error(`exit ${code}:\n${server.output.join("")}`);
    expect(await inFlight).toBe("connection closed");
  } finally {
    await lock.query("rollback").catch(() => {});
    await lock.end();
    server.child.kill("SIGKILL");
  }
  expect(logLines(server.output).some((l) => l.level === 50 && /shutdown deadline passed/.test(l.msg))).toBe(true);
});

/** POST /graphql on a connection of its own (so node:cluster may hand it to any process). */
function postOnNewConnection(port: number, query: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ query });
    const req = request(
      { host: "127.0.0.1", port, path: "/graphql", method: "POST", agent: false, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

test("WEB_CONCURRENCY=2: two server processes share the port; SIGTERM stops both and exits 0", async () => {
  // (The in-flight request during a two-process shutdown is the test above.)
  const server = await start({ WEB_CONCURRENCY: "2", SHUTDOWN_TIMEOUT_MS: "60000" });
  // The kernel hands each new connection to a process waiting in accept (server/cluster.ts):
  // new connections until both processes have answered (each logs its pid).
  for (let i = 0; i < 200 && new Set(logLines(server.output).filter((l) => l.msg === "request").map((l) => l.pid)).size < 2; i++) {
    expect(await postOnNewConnection(server.port, "{ __typename }")).toBe(200);
    await new Promise((r) => setTimeout(r, 5));
  }
  const user = await createUser(db);
  const response = await fetch(`http://127.0.0.1:${server.port}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${tokenFor(user)}` },
    body: JSON.stringify({ query: "{ currentUser { email } }" }),
  });
  expect(await response.json()).toEqual({ data: { currentUser: { email: user.email } } });
  try {
    server.child.kill("SIGTERM");
    const code = await server.exit;
    if (code !== 0) throw new Error(`exit ${code}:\n${server.output.join("")}`);
  } finally {
    server.child.kill("SIGKILL");
  }
  const lines = logLines(server.output);
  // requests were answered by two processes, the job worker and migrations ran once (in the primary)
  const servers = new Set(lines.filter((l) => l.msg === "request").map((l) => l.pid));
  expect(servers.size).toBe(2);
  expect(lines.filter((l) => /serving from 2 processes/.test(l.msg))).toHaveLength(1);
  expect(lines.filter((l) => l.msg === "stopped cleanly")).toHaveLength(1);
  // Two server processes and the primary start, migrate and stop on a machine that may be running
  // the rest of the suite against the same PostgreSQL: more than jest's default minute.
}, 240_000);
