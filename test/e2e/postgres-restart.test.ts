// PostgreSQL restarts under load: this test starts its OWN embedded PostgreSQL 15 (never the
// shared test cluster or the machine's service), serves the API from it, keeps requests
// flowing from several concurrent clients, stops PostgreSQL, starts it again on the same data
// and port, and checks that the server stayed up, answered errors (HTTP responses, not dropped
// connections) while the database was down, reported unready, and recovered by itself.

import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { startEmbeddedPostgres, type EmbeddedCluster } from "../../db/embedded.ts";
import { ensureDatabase, ensureRoles, ROLES } from "../../db/roles.ts";
import { migrateDatabase } from "../../db/migrate.ts";
import { withCredentials } from "../../db/urls.ts";
import { postGraphQL, startServer, type OpsServer } from "../helpers/operations.ts";
import { freePort } from "../../db/ports.ts";

jest.setTimeout(180_000);


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let dir: string;
let port: number;
let password: string;
let cluster: EmbeddedCluster | null = null;
let server: OpsServer | null = null;

function start() {
  return startEmbeddedPostgres({
    databaseDir: path.join(dir, "pg"),
    port,
    password,
    settings: { fsync: "off", synchronous_commit: "off", full_page_writes: "off" },
  });
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "tenantbase-restart-"));
  chmodSync(dir, 0o755); // under root, PostgreSQL runs as the postgres user
  port = await freePort();
  password = randomBytes(12).toString("hex");
  cluster = await start();
  const passwords = { ownerPassword: randomBytes(12).toString("hex"), authenticatorPassword: randomBytes(12).toString("hex") };
  await ensureRoles(cluster.rootUrl, passwords);
  await ensureDatabase(cluster.rootUrl, "tb_restart");
  const ownerUrl = withCredentials(cluster.rootUrl, ROLES.owner, passwords.ownerPassword, "tb_restart");
  const authUrl = withCredentials(cluster.rootUrl, ROLES.authenticator, passwords.authenticatorPassword, "tb_restart");
  await migrateDatabase({ ownerUrl, rootUrl: cluster.rootUrl, includeCurrent: true });
  server = await startServer({ ownerUrl, authUrl }, { authPoolSize: 10 });
});

afterAll(async () => {
  await server?.close().catch(() => {});
  await cluster?.stop().catch(() => {});
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Outcome {
  at: number;
  phase: string;
  status: number | "no-response";
  ok: boolean;
}

test("the server survives a PostgreSQL restart under load and recovers by itself", async () => {
  const url = server!.url;
  const email = `restart-${randomBytes(4).toString("hex")}@example.com`;
  const registered = await postGraphQL(url, {
    query: "mutation($e: String!) { register(input: { email: $e, password: \"correct horse battery\", name: \"Restart\" }) { jwtToken } }",
    variables: { e: email },
  });
  const token = registered.body.data.register.jwtToken as string;
  expect(token).toMatch(/^eyJ/);

  let phase = "before";
  let running = true;
  const outcomes: Outcome[] = [];
  const client = async () => {
    while (running) {
      const at = Date.now();
      try {
        const res = await postGraphQL(url, { query: "{ currentUser { email } }" }, { authorization: `Bearer ${token}` });
        outcomes.push({ at, phase, status: res.status, ok: res.status === 200 && res.body?.data?.currentUser?.email === email });
      } catch {
        outcomes.push({ at, phase, status: "no-response", ok: false });
      }
      await sleep(20);
    }
  };
  const clients = Array.from({ length: 12 }, client);

  // Enough answers in each phase, however slow the machine: at least the time, and at least 11.
  const atLeast = async (ms: number, name: string) => {
    const until = Date.now() + 30_000;
    await sleep(ms);
    while (outcomes.filter((o) => o.phase === name).length <= 10 && Date.now() < until) await sleep(100);
  };
  await atLeast(1000, "before");
  phase = "down";
  await cluster!.stop();
  await atLeast(1500, "down");
  const downReady = await fetch(`${url}/readyz`);
  expect(downReady.status).toBe(503);
  const downBody = (await downReady.json()) as any;
  expect(downBody.checks.database_owner.ok).toBe(false);
  expect(downBody.checks.database_authenticator.ok).toBe(false);
  expect((await fetch(`${url}/healthz`)).status).toBe(200); // the process itself is fine

  phase = "restarting";
  cluster = await start();
  const restartedAt = Date.now();
  phase = "after";
  // wait until a request succeeds again (bounded, generous: no timing threshold asserted)
  let recoveredAt: number | null = null;
  for (let i = 0; i < 300 && recoveredAt === null; i++) {
    const ok = outcomes.find((o) => o.phase === "after" && o.ok && o.at >= restartedAt);
    if (ok) recoveredAt = ok.at;
    else await sleep(100);
  }
  expect(recoveredAt).not.toBeNull();
  await sleep(1000);
  running = false;
  await Promise.all(clients);

  const before = outcomes.filter((o) => o.phase === "before");
  const down = outcomes.filter((o) => o.phase === "down");
  const lateAfter = outcomes.filter((o) => o.phase === "after" && o.at > recoveredAt! + 500);
  expect(before.length).toBeGreaterThan(10);
  expect(before.every((o) => o.ok)).toBe(true);
  // while down: every request got an HTTP answer (an error), none hung or lost its connection
  expect(down.length).toBeGreaterThan(10);
  expect(down.every((o) => o.status !== "no-response")).toBe(true);
  expect(down.some((o) => !o.ok)).toBe(true);
  // after recovery: everything works again, with no restart of the server
  expect(lateAfter.length).toBeGreaterThan(10);
  expect(lateAfter.filter((o) => !o.ok)).toEqual([]);
  const ready = await fetch(`${url}/readyz`);
  expect(ready.status).toBe(200);
  const summary = {
    requests: outcomes.length,
    downErrors: down.filter((o) => !o.ok).length,
    downStatuses: [...new Set(down.map((o) => o.status))],
    recoveryMs: recoveredAt! - restartedAt,
  };
  process.stdout.write(`postgres restart: ${JSON.stringify(summary)}\n`);
});
