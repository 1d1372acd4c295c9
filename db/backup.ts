// Backups: pg_dump in custom format, restore into a new database, and the restore test.
//
//   createBackup   exports a snapshot, counts every table's rows and sums the credit tables in
//                  that snapshot, runs pg_dump --snapshot on the same snapshot, and writes
//                  BACKUP_DIR/tenantbase-<db>-<time>.dump (+ .json manifest with the counts),
//                  under a temporary name renamed when complete; then prunes old backups.
//   restoreBackup  pg_restore into a NEW database (never over an existing one; over the live
//                  database only with an explicit flag).
//   verifyBackup   restores the newest backup into a scratch database, compares its counts and
//                  sums with the manifest, drops the scratch database, records the result.
//
// pg_dump/pg_restore must match the server's major version: found in PG_BIN_DIR, the usual
// per-version folders, or PATH; if none matches, the error names what to install. The embedded
// PostgreSQL package ships no pg_dump: Debian's postgresql-client-15 dumps it.

import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { ROLES, grantConnect } from "./roles.ts";
import { databaseNameOf, redact, withDatabase } from "./urls.ts";
import { executableSearchPath } from "../core/config.ts";

const execFileAsync = promisify(execFile);

export interface BackupSettings {
  /** app_owner URL of the live database. */
  ownerUrl: string;
  /** Superuser URL (any database of the cluster); needed to restore and verify, preferred to dump. */
  rootUrl: string | null;
  backupDir: string;
  retentionDays: number;
  pgBinDir: string | null;
  log?: (level: "info" | "warn" | "error", message: string, fields?: Record<string, unknown>) => void;
}

export interface Manifest {
  version: 1;
  database: string;
  serverVersion: string;
  createdAt: string;
  snapshot: string;
  dumpedAs: string;
  /** Rows per table ("schema.table") in the dump's snapshot. */
  tables: Record<string, number>;
  /** Sum of every numeric column of the credit tables ("schema.table.column"), as strings. */
  sums: Record<string, string>;
}

export interface BackupResult {
  file: string;
  manifest: Manifest;
  bytes: number;
  durationMs: number;
  pruned: string[];
}

const FILE_PATTERN = /^tenantbase-([a-z_][a-z0-9_]*)-(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z)\.dump$/;

// ------------------------------------------------------------------------------------------
// Finding pg_dump / pg_restore of the right major version
// ------------------------------------------------------------------------------------------

export async function serverMajorVersion(connectionString: string): Promise<{ major: number; version: string }> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    const { rows } = await client.query("select current_setting('server_version_num')::int as num, version() as version");
    return { major: Math.floor(rows[0].num / 10000), version: rows[0].version };
  } finally {
    await client.end();
  }
}

async function toolMajor(file: string): Promise<number | null> {
  try {
    const { stdout } = await execFileAsync(file, ["--version"], { timeout: 10_000 });
    const match = /\(PostgreSQL\) (\d+)/.exec(stdout);
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

/** The path of `tool` (pg_dump, pg_restore) for PostgreSQL `major`, or an error saying what to install. */
export async function findPgTool(tool: "pg_dump" | "pg_restore", major: number, pgBinDir: string | null): Promise<string> {
  const dirs = [
    ...(pgBinDir ? [pgBinDir] : []),
    `/usr/lib/postgresql/${major}/bin`, // Debian, Ubuntu
    `/usr/pgsql-${major}/bin`, // RHEL, Fedora (PGDG)
    `/opt/homebrew/opt/postgresql@${major}/bin`, // macOS Homebrew (Apple silicon)
    `/usr/local/opt/postgresql@${major}/bin`, // macOS Homebrew (Intel)
    ...executableSearchPath(),
  ];
  const tried: string[] = [];
  for (const dir of [...new Set(dirs)]) {
    const file = path.join(dir, tool);
    if (!existsSync(file)) continue;
    const found = await toolMajor(file);
    tried.push(`${file} (${found === null ? "unreadable version" : `PostgreSQL ${found}`})`);
    if (found === major) return file;
  }
  throw new Error(
    `${tool} for PostgreSQL ${major} not found (the server is PostgreSQL ${major}; ` +
      (tried.length ? `found only: ${tried.join(", ")}` : "none on PATH or in the usual folders") +
      `). Install it (Debian/Ubuntu: apt-get install postgresql-client-${major}) or set PG_BIN_DIR to the folder that holds it.`,
  );
}

// ------------------------------------------------------------------------------------------
// Counting: the same queries for the source snapshot and for the restored copy
// ------------------------------------------------------------------------------------------

async function tableStats(client: pg.ClientBase): Promise<Pick<Manifest, "tables" | "sums">> {
  const { rows: tables } = await client.query<{ schema: string; name: string }>(`
    select n.nspname as schema, c.relname as name
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind in ('r', 'p')
      and n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
      and n.nspname not like 'pg_temp%'
      -- tables that belong to an extension are recreated by CREATE EXTENSION, not dumped
      and not exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype = 'e')
    order by 1, 2`);
  const counts: Record<string, number> = {};
  for (const table of tables) {
    const ident = `${client.escapeIdentifier(table.schema)}.${client.escapeIdentifier(table.name)}`;
    const { rows } = await client.query(`select count(*)::bigint as n from only ${ident}`);
    counts[`${table.schema}.${table.name}`] = Number(rows[0].n);
  }
  // The credit tables' numbers: the ledger, balances, grants, reservations (whatever exists).
  const { rows: columns } = await client.query<{ schema: string; table: string; column: string }>(`
    select n.nspname as schema, c.relname as table, a.attname as column
    from pg_attribute a
    join pg_class c on c.oid = a.attrelid
    join pg_namespace n on n.oid = c.relnamespace
    where n.nspname in ('app_public', 'app_private') and c.relkind = 'r' and c.relname like 'credit%'
      and a.attnum > 0 and not a.attisdropped
      and a.atttypid in ('int2'::regtype, 'int4'::regtype, 'int8'::regtype, 'numeric'::regtype)
    order by 1, 2, 3`);
  const sums: Record<string, string> = {};
  for (const col of columns) {
    const ident = `${client.escapeIdentifier(col.schema)}.${client.escapeIdentifier(col.table)}`;
    const { rows } = await client.query(
      `select coalesce(sum(${client.escapeIdentifier(col.column)}), 0)::text as s from only ${ident}`,
    );
    sums[`${col.schema}.${col.table}.${col.column}`] = rows[0].s;
  }
  return { tables: counts, sums };
}

// ------------------------------------------------------------------------------------------
// Backup
// ------------------------------------------------------------------------------------------

function run(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
    });
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve() : reject(new Error(`${path.basename(file)} exited with ${code}: ${stderr.trim()}`)),
    );
  });
}

/** libpq settings for a URL, with the password in PGPASSWORD rather than on the command line. */
function libpq(connectionString: string): { dbname: string; env: NodeJS.ProcessEnv } {
  const url = new URL(connectionString);
  const password = decodeURIComponent(url.password);
  url.password = "";
  return { dbname: url.toString(), env: password ? { PGPASSWORD: password } : {} };
}

function timestamp(date: Date): string {
  return date.toISOString().replace(/:/g, "-").replace(".", "-");
}

export function listBackups(backupDir: string): { file: string; database: string; time: Date }[] {
  if (!existsSync(backupDir)) return [];
  return readdirSync(backupDir)
    .map((name) => ({ name, match: FILE_PATTERN.exec(name) }))
    .filter((entry) => entry.match)
    .map(({ name, match }) => {
      const [date, time] = match![2].split("T");
      const [h, m, s, ms] = time.replace("Z", "").split("-");
      return { file: path.join(backupDir, name), database: match![1], time: new Date(`${date}T${h}:${m}:${s}.${ms}Z`) };
    })
    .sort((a, b) => a.time.getTime() - b.time.getTime());
}

/** Deletes backups (and their manifests) older than the retention; returns what it deleted. */
export function pruneBackups(backupDir: string, retentionDays: number, now = new Date()): string[] {
  const cutoff = now.getTime() - retentionDays * 86_400_000;
  const deleted: string[] = [];
  for (const backup of listBackups(backupDir)) {
    if (backup.time.getTime() >= cutoff) continue;
    rmSync(backup.file, { force: true });
    rmSync(`${backup.file}.json`, { force: true });
    deleted.push(backup.file);
  }
  return deleted;
}

export async function createBackup(settings: BackupSettings): Promise<BackupResult> {
  const started = Date.now();
  const database = databaseNameOf(settings.ownerUrl);
  // A superuser sees every row whatever the policies; the owner sees what its policies allow
  // (owner_all on every secured table), so it dumps with row security enabled.
  const dumpUrl = settings.rootUrl ? withDatabase(settings.rootUrl, database) : settings.ownerUrl;
  const { major, version } = await serverMajorVersion(dumpUrl);
  const pgDump = await findPgTool("pg_dump", major, settings.pgBinDir);
  mkdirSync(settings.backupDir, { recursive: true });

  const createdAt = new Date();
  const name = `tenantbase-${database}-${timestamp(createdAt)}.dump`;
  const file = path.join(settings.backupDir, name);
  const partial = path.join(settings.backupDir, `.${name}.partial`);

  const client = new pg.Client({ connectionString: dumpUrl });
  await client.connect();
  try {
    // One snapshot for the counts and for pg_dump: the manifest describes exactly the dump.
    await client.query("begin isolation level repeatable read read only");
    const { rows } = await client.query("select pg_export_snapshot() as snapshot, current_user as who");
    const snapshot: string = rows[0].snapshot;
    const stats = await tableStats(client);
    const { dbname, env } = libpq(dumpUrl);
    const args = [
      "--format=custom",
      "--compress=6",
      `--snapshot=${snapshot}`,
      `--file=${partial}`,
      ...(settings.rootUrl ? [] : ["--enable-row-security"]),
      `--dbname=${dbname}`,
    ];
    try {
      await run(pgDump, args, env);
    } catch (error) {
      rmSync(partial, { force: true });
      throw error;
    }
    const manifest: Manifest = {
      version: 1,
      database,
      serverVersion: version,
      createdAt: createdAt.toISOString(),
      snapshot,
      dumpedAs: rows[0].who,
      ...stats,
    };
    // Manifest first, then the dump appears under its final name in one rename.
    writeFileSync(`${file}.json`, JSON.stringify(manifest, null, 2) + "\n");
    renameSync(partial, file);
    await client.query("commit");
    const pruned = pruneBackups(settings.backupDir, settings.retentionDays);
    return { file, manifest, bytes: statSync(file).size, durationMs: Date.now() - started, pruned };
  } finally {
    await client.query("rollback").catch(() => {});
    await client.end();
  }
}

// ------------------------------------------------------------------------------------------
// Restore
// ------------------------------------------------------------------------------------------

export interface RestoreOptions {
  file: string;
  rootUrl: string;
  /** Target database; must not exist, unless it is the live one and overwriteLive is set. */
  into: string;
  liveDatabase: string;
  overwriteLive?: boolean;
  pgBinDir: string | null;
}

export async function restoreBackup(options: RestoreOptions): Promise<{ database: string; durationMs: number }> {
  const started = Date.now();
  if (!existsSync(options.file)) throw new Error(`backup file not found: ${options.file}`);
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(options.into)) {
    throw new Error(`database name must be a lowercase SQL identifier, got "${options.into}"`);
  }
  const isLive = options.into === options.liveDatabase;
  if (isLive && !options.overwriteLive) {
    throw new Error(
      `refusing to restore over the live database "${options.into}"; restore into a new database (--into <name>), ` +
        `or pass --overwrite-live to drop and replace it`,
    );
  }
  const { major } = await serverMajorVersion(options.rootUrl);
  const pgRestore = await findPgTool("pg_restore", major, options.pgBinDir);

  const admin = new pg.Client({ connectionString: options.rootUrl });
  await admin.connect();
  try {
    const { rowCount } = await admin.query("select 1 from pg_database where datname = $1", [options.into]);
    if (rowCount && !isLive) {
      throw new Error(`database "${options.into}" already exists; restore never overwrites one (choose another --into)`);
    }
    if (rowCount && isLive) await admin.query(`drop database ${admin.escapeIdentifier(options.into)} with (force)`);
    await admin.query(
      `create database ${admin.escapeIdentifier(options.into)} owner ${ROLES.owner} encoding 'UTF8' template template0`,
    );
    await grantConnect(admin, options.into);
  } finally {
    await admin.end();
  }
  const { dbname, env } = libpq(withDatabase(options.rootUrl, options.into));
  try {
    await run(pgRestore, ["--exit-on-error", "--single-transaction", `--dbname=${dbname}`, options.file], env);
  } catch (error) {
    if (!isLive) await dropDatabase(options.rootUrl, options.into).catch(() => {});
    throw error;
  }
  return { database: options.into, durationMs: Date.now() - started };
}

async function dropDatabase(rootUrl: string, name: string): Promise<void> {
  const admin = new pg.Client({ connectionString: rootUrl });
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${admin.escapeIdentifier(name)} with (force)`);
  } finally {
    await admin.end();
  }
}

// ------------------------------------------------------------------------------------------
// Verification (the restore test)
// ------------------------------------------------------------------------------------------

export interface VerifyResult {
  ok: boolean;
  file: string | null;
  scratchDatabase: string | null;
  tables: number;
  rows: number;
  mismatches: string[];
  error?: string;
  durationMs: number;
}

function compare(expected: Manifest, actual: Pick<Manifest, "tables" | "sums">): string[] {
  const problems: string[] = [];
  for (const [table, count] of Object.entries(expected.tables)) {
    if (!(table in actual.tables)) problems.push(`${table}: missing after restore`);
    else if (actual.tables[table] !== count) problems.push(`${table}: ${count} rows in the backup's snapshot, ${actual.tables[table]} restored`);
  }
  for (const table of Object.keys(actual.tables)) {
    if (!(table in expected.tables)) problems.push(`${table}: restored but not in the manifest`);
  }
  for (const [column, sum] of Object.entries(expected.sums)) {
    if (actual.sums[column] !== sum) problems.push(`${column}: sum ${sum} in the snapshot, ${actual.sums[column] ?? "missing"} restored`);
  }
  return problems;
}

/** Restores `file` (default: the newest backup) into a scratch database and checks it. */
export async function verifyBackup(settings: BackupSettings, file?: string): Promise<VerifyResult> {
  const started = Date.now();
  const database = databaseNameOf(settings.ownerUrl);
  const target = file ?? listBackups(settings.backupDir).filter((b) => b.database === database).at(-1)?.file ?? null;
  const result: VerifyResult = { ok: false, file: target, scratchDatabase: null, tables: 0, rows: 0, mismatches: [], durationMs: 0 };
  try {
    if (!settings.rootUrl) {
      throw new Error("verifying a backup needs a superuser connection (ROOT_DATABASE_URL) to create the scratch database");
    }
    if (!target) throw new Error(`no backup of ${database} in ${settings.backupDir}`);
    if (!existsSync(`${target}.json`)) throw new Error(`the manifest ${target}.json is missing`);
    const manifest = JSON.parse(readFileSync(`${target}.json`, "utf8")) as Manifest;
    const scratch = `${database.slice(0, 40)}_verify_${randomBytes(4).toString("hex")}`;
    result.scratchDatabase = scratch;
    try {
      await restoreBackup({ file: target, rootUrl: settings.rootUrl, into: scratch, liveDatabase: database, pgBinDir: settings.pgBinDir });
      const client = new pg.Client({ connectionString: withDatabase(settings.rootUrl, scratch) });
      await client.connect();
      let actual: Pick<Manifest, "tables" | "sums">;
      try {
        actual = await tableStats(client);
      } finally {
        await client.end();
      }
      result.mismatches = compare(manifest, actual);
      result.tables = Object.keys(actual.tables).length;
      result.rows = Object.values(actual.tables).reduce((a, b) => a + b, 0);
      result.ok = result.mismatches.length === 0;
    } finally {
      await dropDatabase(settings.rootUrl, scratch);
    }
  } catch (error) {
    result.ok = false;
    result.error = error instanceof Error ? error.message : String(error);
  }
  result.durationMs = Date.now() - started;
  return result;
}

/** Writes a backup or verification outcome where /readyz and /metrics read it. */
export async function recordBackupRun(
  ownerUrl: string,
  kind: "backup" | "verify",
  run: { file: string | null; ok: boolean; details: Record<string, unknown>; startedAt: Date },
): Promise<void> {
  const client = new pg.Client({ connectionString: ownerUrl });
  await client.connect();
  try {
    await client.query("begin");
    await client.query(
      `insert into app_private.backup_runs (kind, file, ok, details, started_at, finished_at)
       values ($1, $2, $3, $4, $5, greatest(now(), $5))`,
      [kind, run.file ?? "", run.ok, JSON.stringify(run.details), run.startedAt],
    );
    if (kind === "verify") {
      await client.query("select app_private.record_check('backup_verification', $1, $2)", [
        run.ok,
        JSON.stringify({ file: run.file, ...run.details }),
      ]);
    }
    await client.query("commit");
  } catch (error) {
    await client.query("rollback").catch(() => {});
    throw error;
  } finally {
    await client.end();
  }
}

export { redact };
