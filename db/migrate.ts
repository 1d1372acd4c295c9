// Brings a database up to date, in this order:
//   1. graphile-worker's own schema (so SQL can queue jobs with graphile_worker.add_job);
//   2. our migrations (graphile-migrate, db/migrations/committed);
//   3. the policies and grants in db/policies, re-applied whenever their text changed.
// Runs as app_owner. Safe to run from several processes at once (advisory locks).

import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import { migrate, watch, Logger } from "graphile-migrate";
import { existsSync } from "node:fs";
import { runMigrations as runWorkerMigrations } from "graphile-worker";
import { projectRoot } from "../core/paths.ts";

export const MIGRATIONS_FOLDER = path.join(projectRoot, "db", "migrations");
export const POLICIES_FOLDER = path.join(projectRoot, "db", "policies");

export interface MigrateOptions {
  ownerUrl: string;
  rootUrl?: string | null;
  log?: (line: string) => void;
  /** Also run the uncommitted migrations in db/migrations/current/ (tests and development). */
  includeCurrent?: boolean;
}

/** Whether db/migrations/current/ holds any uncommitted migration. */
export function hasCurrentMigrations(): boolean {
  const dir = path.join(MIGRATIONS_FOLDER, "current");
  return existsSync(dir) && readdirSync(dir).some((file) => file.endsWith(".sql"));
}

export function migrateSettings(options: MigrateOptions) {
  const log = options.log ?? (() => {});
  return {
    connectionString: options.ownerUrl,
    rootConnectionString: options.rootUrl ?? undefined,
    migrationsFolder: MIGRATIONS_FOLDER,
    logger: new Logger(() => (level: string, message: string) => log(`[migrate:${level}] ${message}`)),
  };
}

export function readPolicies(): { sql: string; hash: string } {
  const files = readdirSync(POLICIES_FOLDER)
    .filter((file) => file.endsWith(".sql"))
    .sort();
  const sql = files
    .map((file) => `-- ${file}\n${readFileSync(path.join(POLICIES_FOLDER, file), "utf8")}`)
    .join("\n");
  return { sql, hash: createHash("sha256").update(sql).digest("hex") };
}

/** Applies db/policies/*.sql in one transaction unless the same text was applied already. */
export async function applyPolicies(ownerUrl: string, force = false): Promise<boolean> {
  const { sql, hash } = readPolicies();
  const client = new pg.Client({ connectionString: ownerUrl });
  await client.connect();
  try {
    await client.query("begin");
    await client.query("select pg_advisory_xact_lock(hashtext('tenantbase:policies'))");
    const { rows } = await client.query("select hash from app_private.policy_state where id = true");
    if (!force && rows[0]?.hash === hash) {
      await client.query("rollback");
      return false;
    }
    await client.query(sql);
    await client.query(
      `insert into app_private.policy_state (id, hash, applied_at) values (true, $1, now())
       on conflict (id) do update set hash = excluded.hash, applied_at = excluded.applied_at`,
      [hash],
    );
    await client.query("commit");
    return true;
  } catch (error) {
    await client.query("rollback").catch(() => {});
    throw error;
  } finally {
    await client.end();
  }
}

export async function migrateDatabase(options: MigrateOptions): Promise<void> {
  const log = options.log ?? (() => {});
  await runWorkerMigrations({ connectionString: options.ownerUrl });
  await migrate(migrateSettings(options));
  if (options.includeCurrent && hasCurrentMigrations()) await watch(migrateSettings(options), true);
  if (await applyPolicies(options.ownerUrl)) log("policies applied");
}
