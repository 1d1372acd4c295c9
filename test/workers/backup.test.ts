// Backup -> restore -> verify round trip with the real pg_dump/pg_restore (the server's major
// version), through the worker tasks and the library the npm scripts use; retention; the
// failure path (a manifest that does not match) showing in /readyz and /metrics.

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { twoTenants, createUser, createOrganization, fillTableFixtures } from "../helpers/fixtures.ts";
import {
  createBackup,
  findPgTool,
  listBackups,
  pruneBackups,
  restoreBackup,
  serverMajorVersion,
  verifyBackup,
  type BackupSettings,
} from "../../db/backup.ts";
import { withDatabase } from "../../db/urls.ts";
import { checkoutSessionObject, invoiceObject, stripeEvent, subscriptionObject } from "../helpers/stripe.ts";
import { startWorker } from "../../workers/runner.ts";
import { setOperationsContext } from "../../workers/operations.ts";
import { dbBackup } from "../../workers/tasks/db_backup.ts";
import { dbVerifyBackup } from "../../workers/tasks/db_verify_backup.ts";
import { createLogger } from "../../core/logger.ts";
import { parsePrometheus, startServer } from "../helpers/operations.ts";

let db: TestDatabase;
let dir: string;
let settings: BackupSettings;
const clusterRoot = () => process.env.TB_TEST_ROOT_URL!;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = mkdtempSync(path.join(os.tmpdir(), "tenantbase-backups-"));
  settings = { ownerUrl: db.ownerUrl, rootUrl: clusterRoot(), backupDir: dir, retentionDays: 30, pgBinDir: null };

  // Data in the foundation tables, the credit ledger, and the job queue.
  const { a, b } = await twoTenants(db);
  await createUser(db, "Loner");
  const grant = await db.owner.query("select to_regprocedure('app_private.grant_credits(uuid,bigint,text,timestamptz,text)') is not null as ok");
  if (grant.rows[0].ok) {
    await db.owner.query("select app_private.grant_credits($1, 500, 'manual', null, 'backup-test-a')", [a.org.id]);
    await db.owner.query("select app_private.grant_credits($1, 1250, 'manual', null, 'backup-test-b')", [b.org.id]);
  }
  await db.owner.query(
    "select graphile_worker.add_job('noop_for_backup_test', '{}', queue_name := 'backup-test', run_at := now() + interval '1 day')",
  );
  await fillOtherTables(a);
});

/**
 * Rows in as many tables as the product's own functions can reach cheaply. A step whose
 * function does not exist (yet) is skipped; one that exists and fails fails the test.
 */
async function fillOtherTables(a: Awaited<ReturnType<typeof twoTenants>>["a"]) {
  const has = async (signature: string) =>
    (await db.owner.query("select to_regprocedure($1) is not null as ok", [signature])).rows[0].ok as boolean;
  const owner = a.owner;
  if (await has("app_public.register(text,text,text)")) {
    await db.queryAs(null, "select app_public.register('backup-reg@example.com', 'correct horse battery staple', 'Reg')");
    // accounts: a mailed token and an attempt counter (db/functions/020-accounts)
    if (await has("app_private.issue_account_token(text,uuid,text)")) {
      await db.owner.query(
        "select app_private.issue_account_token('verify_email', (select id from app_public.users where email = 'backup-reg@example.com'))",
      );
      await db.queryAs(null, "select app_hidden.count_attempt('authenticate', 'backup-reg@example.com')");
    }
  }
  const project = await db.owner.query("insert into app_public.projects (organization_id, name) values ($1, 'Backup project') returning id", [a.org.id]);
  if (await has("app_public.invite_member(uuid,text,app_public.organization_role)")) {
    // a's Free plan is full (3 members); invite into a fresh organization
    const inviter = await createUser(db, "Inviter");
    const org = await createOrganization(db, inviter, "Inviting Org");
    await db.queryAs(inviter, "select app_public.invite_member($1, 'invitee@example.com', 'member')", [org.id]);
  }
  if (await has("app_public.change_organization_slug(uuid,text)")) {
    await db.queryAs(owner, "select app_public.change_organization_slug($1, $2)", [a.org.id, `renamed-${a.org.slug}`.slice(0, 40)]);
  }
  if (await has("app_public.create_api_key(uuid,text,app_public.organization_role,timestamptz)")) {
    await db.queryAs(owner, "select app_public.create_api_key($1, 'backup key', 'member', null)", [a.org.id]);
  }
  await db.owner.query("insert into app_public.credit_packages (name, credits) values ('Backup pack', 1000)").catch((error) => {
    if (!/does not exist/.test(error.message)) throw error;
  });
  if (await has("app_public.start_generation(uuid,uuid,app_public.generation_kind,text,jsonb,numeric,text)")) {
    await db.queryAs(
      owner,
      "select app_public.start_generation($1, $2, (enum_range(null::app_public.generation_kind))[1], 'model-x', '{}', 10, 'backup-gen-1')",
      [a.org.id, project.rows[0].id],
    );
  }
  await db.owner.query(
    `insert into app_private.stripe_events (id, type, stripe_created_at, payload) values ('evt_backup_test', 'customer.created', now(), '{}')`,
  ).catch((error) => {
    if (!/does not exist/.test(error.message)) throw error;
  });
  // billing: a subscription and its paid invoice, received and applied as the webhook job does
  // (stripe_customers, subscriptions, invoices, a credit grant)
  await db.owner.query("update app_public.plans set stripe_price_id = 'price_pro' where id = 'pro'");
  const now = Math.floor(Date.now() / 1000);
  const day = 86_400;
  const customer = "cus_backup1";
  const events = [
    stripeEvent(
      "customer.subscription.created",
      subscriptionObject({ id: "sub_backup1", customer, status: "active", priceId: "price_pro", created: now - day, periodStart: now - day, periodEnd: now + 29 * day, organizationId: a.org.id }),
      now - day,
    ),
    stripeEvent(
      "invoice.paid",
      invoiceObject({ id: "in_backup1", customer, subscription: "sub_backup1", priceId: "price_pro", status: "paid", amount: 2900, periodStart: now - day, periodEnd: now + 29 * day, organizationId: a.org.id }),
      now - day + 60,
    ),
  ];
  // and a credit pack bought through Checkout (stripe_customers, a purchase grant)
  const { rows: pack } = await db.owner.query("select id from app_public.credit_packages where name = 'Backup pack'");
  events.push(
    stripeEvent(
      "checkout.session.completed",
      checkoutSessionObject({ id: "cs_backup1", customer, organizationId: a.org.id, creditPackageId: pack[0].id }),
      now,
    ),
  );
  for (const event of events) {
    await db.owner.query("select app_private.receive_stripe_event($1::jsonb)", [JSON.stringify(event)]);
    await db.owner.query("select app_private.process_stripe_event($1)", [event.id]);
  }
  // usage: close b's current period into usage_periods, as the hourly rollover does
  const { rows: b } = await db.owner.query("select organization_id from app_public.usage_counters where organization_id <> $1 limit 1", [a.org.id]);
  await db.owner.query(
    "update app_public.usage_counters set period_start = period_start - interval '1 month', period_end = now() - interval '1 second' where organization_id = $1",
    [b[0].organization_id],
  );
  await db.owner.query("select app_private.rollover_usage_period($1)", [b[0].organization_id]);
  // the worker's own bookkeeping of the crontab (known crontabs): a worker started with it
  const worker = await startWorker({ ownerUrl: db.ownerUrl, taskList: {}, crontab: "0 4 * * * noop_for_backup_test", pollInterval: 60_000 });
  await worker.stop();
  // this issue's own tables
  await db.owner.query("select app_private.record_check('credit_ledger', true, '{}')");
  await db.owner.query("select app_private.count_job('noop_for_backup_test', 'completed')");
  await db.owner.query(
    "insert into app_private.worker_heartbeats (worker_id, hostname, pid, started_at, last_seen_at) values ('backup-test', 'h', 1, now(), now())",
  );
  await db.owner.query(
    "insert into app_private.backup_runs (kind, file, ok, started_at, finished_at) values ('backup', '/earlier.dump', true, now(), now())",
  );
  // tables that declare their own fixture row (test/db/<domain>/<table>.fixture.sql)
  await fillTableFixtures(db, a.org.id, a.member.userId);
}

afterAll(async () => {
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("pg_dump and pg_restore of the server's major version are found (or the error names what to install)", async () => {
  const { major } = await serverMajorVersion(db.ownerUrl);
  expect(major).toBe(15);
  const pgDump = await findPgTool("pg_dump", major, null);
  expect(pgDump).toMatch(/pg_dump$/);
  await expect(findPgTool("pg_dump", 99, "/nonexistent")).rejects.toThrow(
    /pg_dump for PostgreSQL 99 not found .*apt-get install postgresql-client-99\) or set PG_BIN_DIR/,
  );
});

test("backup -> restore into a new database -> same rows in every table and same credit sums", async () => {
  const backup = await createBackup(settings);
  expect(path.basename(backup.file)).toMatch(new RegExp(`^tenantbase-${db.name}-\\d{4}-\\d\\d-\\d\\dT[\\d-]+Z\\.dump$`));
  expect(backup.bytes).toBeGreaterThan(1000);
  // complete files only: no temporary left behind, manifest next to the dump
  expect(readdirSync(dir).filter((f) => f.includes("partial"))).toEqual([]);
  expect(existsSync(`${backup.file}.json`)).toBe(true);

  const { tables, sums } = backup.manifest;
  const filled = [
    "app_public.users", "app_public.organizations", "app_public.organization_members", "app_public.audit_events",
    "app_private.sessions", "app_private.user_secrets", "app_public.projects", "app_public.invitations",
    "app_public.organization_slug_redirects", "app_public.api_keys", "app_public.credit_packages", "app_public.generations",
    "app_public.credit_reservations", "app_public.credit_ledger", "app_private.stripe_events",
    "app_private.operations_checks", "app_private.job_counters", "app_private.worker_heartbeats", "app_private.backup_runs",
    "graphile_worker._private_jobs", "graphile_worker._private_tasks", "graphile_worker._private_job_queues",
  ].filter((table) => table in tables);
  expect(filled.length).toBeGreaterThanOrEqual(15);
  expect(filled.filter((table) => !(tables[table] > 0))).toEqual([]);
  // graphile_migrate.current is only used by `graphile-migrate watch` in development
  const empty = Object.keys(tables).filter((table) => tables[table] === 0 && table !== "graphile_migrate.current");
  process.stdout.write(`backup round trip: ${Object.keys(tables).length} tables, ${Object.keys(tables).length - empty.length} with rows; empty: ${empty.join(", ")}\n`);
  // data in every table, so the round trip proves every one of them survives
  expect(empty).toEqual([]);
  expect(tables["app_public.users"]).toBe(9);
  if ("app_public.credit_ledger" in tables) {
    expect(tables["app_public.credit_ledger"]).toBeGreaterThanOrEqual(2);
    expect(Object.keys(sums).length).toBeGreaterThan(0);
  }

  // restore into a new database, then compare everything with the source as it is now
  const into = `${db.name}_r`;
  await restoreBackup({ file: backup.file, rootUrl: clusterRoot(), into, liveDatabase: db.name, pgBinDir: null });
  const restored = new pg.Client({ connectionString: withDatabase(clusterRoot(), into) });
  await restored.connect();
  try {
    for (const [table, count] of Object.entries(tables)) {
      const { rows } = await restored.query(`select count(*)::int as n from ${table.split(".").map((p) => restored.escapeIdentifier(p)).join(".")}`);
      expect({ table, n: rows[0].n }).toEqual({ table, n: count });
    }
    const { rows } = await restored.query("select email from app_public.users order by email");
    const source = await db.owner.query("select email from app_public.users order by email");
    expect(rows).toEqual(source.rows);
  } finally {
    await restored.end();
  }

  // never over an existing database; never over the live one without the explicit flag
  await expect(restoreBackup({ file: backup.file, rootUrl: clusterRoot(), into, liveDatabase: db.name, pgBinDir: null })).rejects.toThrow(
    /already exists; restore never overwrites/,
  );
  await expect(restoreBackup({ file: backup.file, rootUrl: clusterRoot(), into: db.name, liveDatabase: db.name, pgBinDir: null })).rejects.toThrow(
    /refusing to restore over the live database/,
  );
  const admin = new pg.Client({ connectionString: clusterRoot() });
  await admin.connect();
  await admin.query(`drop database ${into} with (force)`);
  await admin.end();
});

test("the verification job restores the newest backup into a scratch database, compares, drops it, records ok", async () => {
  const logLines: string[] = [];
  setOperationsContext({
    ownerUrl: db.ownerUrl,
    rootUrl: clusterRoot(),
    backupDir: dir,
    backupRetentionDays: 30,
    slowQueryMs: 500,
    pgBinDir: null,
    logger: createLogger({ level: "info", stream: { write: (l: string) => void logLines.push(l) } }),
  });
  // data changes after the backup do not matter: the comparison is with the dump's snapshot
  await dbBackup({}, {} as any);
  await createUser(db, "After the backup");
  await dbVerifyBackup({}, {} as any);

  const { rows } = await db.owner.query(
    "select kind, ok, details from app_private.backup_runs where file <> '/earlier.dump' order by finished_at",
  );
  expect(rows.map((r) => [r.kind, r.ok])).toEqual([["backup", true], ["verify", true]]);
  expect(rows[1].details.mismatches).toEqual([]);
  expect(rows[1].details.rows).toBeGreaterThan(20);
  const check = await db.owner.query("select ok from app_private.operations_checks where name = 'backup_verification'");
  expect(check.rows).toEqual([{ ok: true }]);
  // the scratch database is gone
  const leftovers = await db.root.query("select datname from pg_database where datname like $1", [`${db.name.slice(0, 40)}_verify_%`]);
  expect(leftovers.rows).toEqual([]);
  expect(logLines.some((l) => l.includes("backup verified"))).toBe(true);
});

test("a backup that does not match its snapshot fails verification: error log, /readyz details, metrics", async () => {
  const newest = listBackups(dir).at(-1)!.file;
  const manifest = JSON.parse(readFileSync(`${newest}.json`, "utf8"));
  manifest.tables["app_public.users"] += 1;
  writeFileSync(`${newest}.json`, JSON.stringify(manifest));

  const logLines: string[] = [];
  setOperationsContext({
    ownerUrl: db.ownerUrl,
    rootUrl: clusterRoot(),
    backupDir: dir,
    backupRetentionDays: 30,
    slowQueryMs: 500,
    pgBinDir: null,
    logger: createLogger({ level: "info", stream: { write: (l: string) => void logLines.push(l) } }),
  });
  await dbVerifyBackup({}, {} as any);
  const failure = logLines.map((l) => JSON.parse(l)).find((l) => l.msg === "backup verification FAILED");
  expect(failure).toMatchObject({ level: 50 });
  expect(failure.mismatches[0]).toMatch(/^app_public\.users: \d+ rows in the backup's snapshot, \d+ restored$/);

  const server = await startServer(db);
  try {
    const ready = await (await fetch(`${server.url}/readyz`)).json();
    expect(ready.checks.backup_verification).toMatchObject({ ok: false, critical: false });
    expect(ready.checks.backup_verification.details.mismatches.length).toBe(1);
    expect(ready.checks.backup).toMatchObject({ ok: true });
    const samples = parsePrometheus(await (await fetch(`${server.url}/metrics`)).text());
    expect(samples.find((s) => s.name === "tenantbase_check_ok" && s.labels.check === "backup_verification")?.value).toBe(0);
    expect(samples.find((s) => s.name === "tenantbase_backup_last_success_timestamp_seconds" && s.labels.kind === "backup")?.value).toBeGreaterThan(0);
  } finally {
    await server.close();
  }
});

test("verification without any backup fails clearly", async () => {
  const empty = mkdtempSync(path.join(os.tmpdir(), "tenantbase-nobackups-"));
  try {
    const result = await verifyBackup({ ...settings, backupDir: empty });
    expect(result.ok).toBe(false);
    expect(result.error).toBe(`no backup of ${db.name} in ${empty}`);
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});

test("retention prunes backups (and manifests) older than BACKUP_RETENTION_DAYS by their timestamp", () => {
  const names = ["2026-01-01T00-00-00-000Z", "2026-11-01T00-00-00-000Z", "2026-11-20T00-00-00-000Z"].map(
    (t) => path.join(dir, `tenantbase-${db.name}-${t}.dump`),
  );
  for (const file of names) {
    writeFileSync(file, "x");
    writeFileSync(`${file}.json`, "{}");
    utimesSync(file, new Date(), new Date());
  }
  const deleted = pruneBackups(dir, 30, new Date("2026-11-22T12:00:00Z"));
  expect(deleted).toEqual([names[0]]);
  expect(existsSync(names[0])).toBe(false);
  expect(existsSync(`${names[0]}.json`)).toBe(false);
  expect(existsSync(names[1]) && existsSync(names[2])).toBe(true);
  for (const file of names.slice(1)) {
    rmSync(file);
    rmSync(`${file}.json`);
  }
});

test("the npm scripts: db:backup, db:restore (new database; refuses the live one), db:verify-backup", async () => {
  const { execFile } = await import("node:child_process");
  const { projectRoot } = await import("../../core/paths.ts");
  const cliDir = mkdtempSync(path.join(os.tmpdir(), "tenantbase-cli-backups-"));
  const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: db.ownerUrl, AUTH_DATABASE_URL: db.authUrl, ROOT_DATABASE_URL: clusterRoot(), DATABASE_NAME: db.name, BACKUP_DIR: cliDir };
  delete env.LOG_FILE;
  const cli = (...args: string[]) =>
    new Promise<{ code: number; out: string }>((resolve) => {
      execFile(process.execPath, ["db/backup-cli.ts", ...args], { cwd: projectRoot, env }, (error, stdout, stderr) =>
        resolve({ code: error ? ((error as any).code ?? 1) : 0, out: stdout + stderr }),
      );
    });
  try {
    const backup = await cli("backup");
    expect(backup.out).toMatch(/^\[backup\] .*tenantbase-.*\.dump \(\d+ bytes, \d+ tables, \d+ rows, \d+ ms\)$/m);
    expect(backup.code).toBe(0);
    const file = listBackups(cliDir).at(-1)!.file;

    const live = await cli("restore", file);
    expect(live.code).toBe(0);
    const restoredName = /-> database (\S+)/.exec(live.out)![1];
    expect(restoredName).toMatch(new RegExp(`^${db.name}_restored_\\d{14}$`));
    expect(live.out).toContain(`the live database ${db.name} is untouched`);
    await db.root.query(`drop database ${restoredName} with (force)`);

    const refused = await cli("restore", file, "--into", db.name);
    expect(refused.code).toBe(1);
    expect(refused.out).toContain(`refusing to restore over the live database "${db.name}"`);
    // credentials never printed
    expect(backup.out + live.out + refused.out).not.toMatch(/postgres:\/\/[^:\s]+:[^*@\s]+@/);

    const verify = await cli("verify");
    expect(verify.code).toBe(0);
    expect(verify.out).toMatch(/^\[verify\] OK: .* tables, \d+ rows and the credit sums match the dump's snapshot/m);
  } finally {
    rmSync(cliDir, { recursive: true, force: true });
  }
});
