// The slow-query report: with pg_stat_statements loaded (the embedded test cluster preloads it),
// statements of this database whose mean time exceeds SLOW_QUERY_MS are logged and counted for
// /metrics; without the extension the check is recorded as unavailable. Which path runs depends
// on the cluster and is asserted either way (the embedded run takes the first).

import pg from "pg";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { memoryLogger, parsePrometheus, startServer } from "../helpers/operations.ts";
import { setOperationsContext } from "../../workers/operations.ts";
import { slowQueryReport } from "../../workers/tasks/slow_query_report.ts";
import { slowQueryMonitoringStatus } from "../../db/monitoring.ts";

let db: TestDatabase;
let preloaded = false;

beforeAll(async () => {
  db = await createTestDatabase();
  const { rows } = await db.root.query(
    "select 'pg_stat_statements' = any (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ',')) as loaded",
  );
  preloaded = rows[0].loaded;
});
afterAll(() => db?.drop());

async function runReport(slowQueryMs: number) {
  const { logger, lines } = memoryLogger();
  setOperationsContext({ ownerUrl: db.ownerUrl, rootUrl: null, backupDir: "/nonexistent", backupRetentionDays: 30, slowQueryMs, pgBinDir: null, logger });
  const client = new pg.Client({ connectionString: db.ownerUrl });
  await client.connect();
  try {
    await slowQueryReport({}, { withPgClient: (fn: (c: pg.Client) => unknown) => fn(client) } as any);
  } finally {
    await client.end();
  }
  return lines.map((l) => JSON.parse(l));
}

test("without the extension in the database: recorded as unavailable, and start-up would warn", async () => {
  const status = await slowQueryMonitoringStatus(db.ownerUrl);
  expect(status).toEqual({ available: false, reason: "the extension is not installed in this database" });
  const logs = await runReport(500);
  expect(logs).toEqual([]);
  const { rows } = await db.owner.query("select ok, details from app_private.operations_checks where name = 'slow_queries'");
  expect(rows).toEqual([{ ok: true, details: { available: false, count: 0, thresholdMs: 500 } }]);
});

test("with pg_stat_statements: statements slower than SLOW_QUERY_MS on average are logged and exported", async () => {
  if (!preloaded) {
    // A configured cluster without shared_preload_libraries: creating the view works but reading fails.
    await db.root.query("create extension if not exists pg_stat_statements");
    expect((await slowQueryMonitoringStatus(db.ownerUrl)).available).toBe(false);
    return;
  }
  await db.root.query("create extension if not exists pg_stat_statements");
  await db.root.query("grant pg_read_all_stats to app_owner");
  expect(await slowQueryMonitoringStatus(db.ownerUrl)).toEqual({ available: true });
  // This database's statistics only, fresh: other test files fill the cluster's table meanwhile.
  await db.root.query("select pg_stat_statements_reset(0, (select oid from pg_database where datname = current_database()), 0)");
  for (let i = 0; i < 3; i++) await db.owner.query("select pg_sleep(0.06), 'slow-query-probe' as probe");

  const logs = await runReport(20);
  const slow = logs.filter((l) => l.msg === "slow query");
  const probe = slow.find((l) => /pg_sleep\(\$1\), \$2 as probe/.test(l.query));
  expect(probe).toMatchObject({ level: 40, thresholdMs: 20, calls: 3 });
  expect(probe.meanMs).toBeGreaterThan(20);
  // normalized text: the literal never reaches the log
  expect(JSON.stringify(logs)).not.toContain("slow-query-probe");

  const { rows } = await db.owner.query("select ok, details from app_private.operations_checks where name = 'slow_queries'");
  expect(rows[0].ok).toBe(false);
  expect(rows[0].details.count).toBe(slow.length);

  const server = await startServer(db);
  try {
    const samples = parsePrometheus(await (await fetch(`${server.url}/metrics`)).text());
    expect(samples.find((s) => s.name === "tenantbase_slow_queries")?.value).toBe(slow.length);
    expect(samples.find((s) => s.name === "tenantbase_check_ok" && s.labels.check === "slow_queries")?.value).toBe(0);
  } finally {
    await server.close();
  }
});
