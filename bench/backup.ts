// `node bench/backup.ts [users]`: how long a backup and its restore test take, on a throwaway
// embedded PostgreSQL with generated data (default 6,000 users in 2,000 organizations of the Free plan, one
// membership each, plus the audit events the triggers write). Prints one JSON line.

import "../core/graphile-env.ts";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { startTestCluster } from "../db/scratch-cluster.ts";
import { ensureDatabase, ensureRoles, ROLES } from "../db/roles.ts";
import { migrateDatabase } from "../db/migrate.ts";
import { withCredentials } from "../db/urls.ts";
import { createBackup, verifyBackup } from "../db/backup.ts";

const users = Number(process.argv[2] ?? 6000);
const orgs = Math.max(1, Math.ceil(users / 3)); // the Free plan allows 3 members

const cluster = await startTestCluster();
const dir = mkdtempSync(path.join(os.tmpdir(), "tenantbase-bench-backup-"));
try {
  const passwords = { ownerPassword: randomBytes(12).toString("hex"), authenticatorPassword: randomBytes(12).toString("hex") };
  await ensureRoles(cluster.rootUrl, passwords);
  await ensureDatabase(cluster.rootUrl, "tb_bench_backup");
  const ownerUrl = withCredentials(cluster.rootUrl, ROLES.owner, passwords.ownerPassword, "tb_bench_backup");
  await migrateDatabase({ ownerUrl, rootUrl: cluster.rootUrl, includeCurrent: true });

  const owner = new pg.Client({ connectionString: ownerUrl });
  owner.on("error", () => {});
  await owner.connect();
  const genStart = Date.now();
  await owner.query(`insert into app_public.users (email, name)
                     select 'bench-' || i || '@example.com', 'User ' || i from generate_series(1, $1) i`, [users]);
  await owner.query(`insert into app_public.organizations (slug, name)
                     select 'bench-org-' || i, 'Org ' || i from generate_series(1, $1) i`, [orgs]);
  await owner.query(`insert into app_public.organization_members (organization_id, user_id, role)
                     select o.id, u.id, 'member'
                     from (select id, row_number() over (order by id) - 1 as n from app_public.users) u
                     join (select id, row_number() over (order by id) - 1 as n from app_public.organizations) o on o.n = u.n % $1`, [orgs]);
  const { rows } = await owner.query(`select pg_database_size(current_database()) as bytes`);
  await owner.end();
  const generateMs = Date.now() - genStart;

  const settings = { ownerUrl, rootUrl: cluster.rootUrl, backupDir: dir, retentionDays: 30, pgBinDir: null };
  console.error(`generated ${users} users in ${generateMs} ms (row by row through every trigger)`);
  const backup = await createBackup(settings);
  console.error(`backup written in ${backup.durationMs} ms; restore-testing it`);
  const verify = await verifyBackup(settings);
  const rowsTotal = Object.values(backup.manifest.tables).reduce((a, b) => a + b, 0);
  console.log(
    JSON.stringify({
      users,
      organizations: orgs,
      rows: rowsTotal,
      databaseMB: +(Number(rows[0].bytes) / 1e6).toFixed(1),
      generateMs,
      backupMs: backup.durationMs,
      dumpMB: +(backup.bytes / 1e6).toFixed(2),
      verifyMs: verify.durationMs,
      verified: verify.ok,
      mismatches: verify.mismatches.length,
    }),
  );
} catch (error) {
  console.error(error);
  process.exitCode = 1;
} finally {
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
}
