// Brings a database up to date, in this order:
//   1. graphile-worker's own schema (so SQL can queue jobs with graphile_worker.add_job);
//   2. our migrations (graphile-migrate, db/migrations/committed);
//   3. db/functions and db/policies, re-applied whenever their text changed (db/apply-schema.ts).
// Runs as app_owner. Safe to run from several processes at once (advisory locks).

import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import { migrate, watch, Logger } from "graphile-migrate";
// Not re-exported by the package's index: ends the pools it keeps open after use.
import { clearAllPools } from "graphile-migrate/dist/pgReal.js";
import { runMigrations as runWorkerMigrations } from "graphile-worker";
import { projectRoot } from "../core/paths.ts";
import { applySchema } from "./apply-schema.ts";

export const MIGRATIONS_FOLDER = path.join(projectRoot, "db", "migrations");

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

/** What graphile-migrate writes into an emptied current migration (its blankMigrationContent). */
const BLANK_MIGRATION = "-- Enter migration here\n";

/**
 * After `db:commit` graphile-migrate writes its blank migration back into current/ as
 * `1-current.sql`; our convention is an empty folder (files are NNN-<domain>-<what>.sql). Removes
 * every .sql file in current/ that holds nothing but comments and blank lines; returns their names.
 */
export function removeBlankCurrentMigrations(): string[] {
  const dir = path.join(MIGRATIONS_FOLDER, "current");
  if (!existsSync(dir)) return [];
  const removed: string[] = [];
  for (const file of readdirSync(dir)) {
    if (!file.endsWith(".sql")) continue;
    const text = readFileSync(path.join(dir, file), "utf8");
    const blank = text
      .split("\n")
      .every((line) => line.trim() === "" || line.trim().startsWith("--"));
    if (blank) {
      rmSync(path.join(dir, file));
      removed.push(file);
    }
  }
  return removed;
}

/**
 * graphile-migrate keeps its pools open for 200 ms after use, and exits the process (code 1) when
 * an idle connection of theirs breaks: stopping the embedded PostgreSQL under them printed
 * "[migrate:error] … terminating connection due to administrator command" after a command had
 * succeeded. Ends them now, and gives their connections a moment to close.
 */
export async function closeMigratePools(): Promise<void> {
  clearAllPools();
  await new Promise((resolve) => setTimeout(resolve, 100));
}

export function migrateSettings(options: MigrateOptions) {
  const log = options.log ?? (() => {});
  return {
    connectionString: options.ownerUrl,
    rootConnectionString: options.rootUrl ?? undefined,
    migrationsFolder: MIGRATIONS_FOLDER,
    blankMigrationContent: BLANK_MIGRATION,
    logger: new Logger(() => (level: string, message: string) => log(`[migrate:${level}] ${message}`)),
  };
}

export async function migrateDatabase(options: MigrateOptions): Promise<void> {
  const log = options.log ?? (() => {});
  await runWorkerMigrations({ connectionString: options.ownerUrl });
  const before = await appliedMigrations(options.ownerUrl);
  await migrate(migrateSettings(options));
  const current = Boolean(options.includeCurrent && hasCurrentMigrations());
  if (current) await watch(migrateSettings(options), true);
  const migrated = current || (await appliedMigrations(options.ownerUrl)) !== before;
  // Functions, triggers, policies and grants: re-applied when their text changed.
  // A migration may have dropped and re-created what a function or policy depends on, so after
  // one the whole set is applied again even if its text did not change.
  await applySchema(options.ownerUrl, { log, force: migrated });
}

/** How many committed migrations the database has run (0 before the first). */
async function appliedMigrations(ownerUrl: string): Promise<number> {
  const client = new pg.Client({ connectionString: ownerUrl });
  await client.connect();
  try {
    const exists = await client.query("select to_regclass('graphile_migrate.migrations') is not null as yes");
    if (!exists.rows[0].yes) return 0;
    const { rows } = await client.query("select count(*)::int as n from graphile_migrate.migrations");
    return rows[0].n;
  } finally {
    await client.end();
  }
}
