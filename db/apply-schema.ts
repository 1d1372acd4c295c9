// Applies the declarative half of the schema: every function, trigger and view in db/functions
// (one current text each), then every policy and grant in db/policies. Migrations hold what
// cannot be re-applied (tables, columns, indexes, types, data changes, drops); this holds what can.
//
// All files run in one transaction, in order (db/functions by domain folder and file name, then
// db/policies by file name), under an advisory lock, and only when the combined hash differs from
// the one recorded in app_private.policy_state (or when forced, e.g. after a migration ran).
// `create or replace` and `secure_table` make every file safe to run again.
//
// A bounded lock_timeout: creating a trigger or a policy takes a strong lock on its table, and a
// request waiting behind a long query (or a running pg_dump) would queue every later request
// behind the apply. So each attempt waits at most lockTimeoutMs for a table lock, then rolls back,
// sleeps and tries again, up to `attempts` times.

import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import { projectRoot } from "../core/paths.ts";

export const FUNCTIONS_FOLDER = path.join(projectRoot, "db", "functions");
export const POLICIES_FOLDER = path.join(projectRoot, "db", "policies");

export interface SchemaFile {
  /** Relative to db/, e.g. "functions/110-credits/ledger.sql". */
  name: string;
  sql: string;
}

function sqlFilesUnder(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((entry) => {
      const full = path.join(dir, entry);
      if (statSync(full).isDirectory()) return sqlFilesUnder(full);
      return entry.endsWith(".sql") ? [full] : [];
    });
}

/** The files in the order they are applied. */
export function readSchemaFiles(): SchemaFile[] {
  return [...sqlFilesUnder(FUNCTIONS_FOLDER), ...sqlFilesUnder(POLICIES_FOLDER)].map((file) => ({
    name: path.relative(path.join(projectRoot, "db"), file).split(path.sep).join("/"),
    sql: readFileSync(file, "utf8"),
  }));
}

/** The whole text to apply and its hash (what /readyz compares with the database). */
export function readSchema(): { files: SchemaFile[]; sql: string; hash: string } {
  const files = readSchemaFiles();
  const sql = files.map((file) => `-- ${file.name}\n${file.sql}`).join("\n");
  return { files, sql, hash: createHash("sha256").update(sql).digest("hex") };
}

export interface ApplyOptions {
  /** Apply even when the recorded hash matches (after a migration, or `npm run db:migrate`). */
  force?: boolean;
  /** Longest wait for one table lock before the attempt is rolled back (default 2 s). */
  lockTimeoutMs?: number;
  /** Attempts before giving up (default 10; the wait between them grows to 5 s). */
  attempts?: number;
  log?: (line: string) => void;
}

const LOCK_NOT_AVAILABLE = "55P03";

/** Applies db/functions + db/policies; true when it applied, false when already current. */
export async function applySchema(ownerUrl: string, options: ApplyOptions = {}): Promise<boolean> {
  const { sql, hash, files } = readSchema();
  const attempts = options.attempts ?? 10;
  const lockTimeoutMs = options.lockTimeoutMs ?? 2000;
  const log = options.log ?? (() => {});
  for (let attempt = 1; ; attempt++) {
    const client = new pg.Client({ connectionString: ownerUrl });
    await client.connect();
    try {
      await client.query("begin");
      // One applier at a time; the others wait here, then find the hash current.
      await client.query("select pg_advisory_xact_lock(hashtext('tenantbase:schema'))");
      const { rows } = await client.query("select hash from app_private.policy_state where id = true");
      if (!options.force && rows[0]?.hash === hash) {
        await client.query("rollback");
        return false;
      }
      await client.query(`select set_config('lock_timeout', $1, true)`, [`${lockTimeoutMs}ms`]);
      await client.query(sql);
      await client.query(
        `insert into app_private.policy_state (id, hash, applied_at) values (true, $1, now())
         on conflict (id) do update set hash = excluded.hash, applied_at = excluded.applied_at`,
        [hash],
      );
      await client.query("commit");
      log(`schema applied: ${files.length} files (db/functions, db/policies), hash ${hash.slice(0, 12)}`);
      return true;
    } catch (error) {
      await client.query("rollback").catch(() => {});
      if ((error as { code?: string }).code !== LOCK_NOT_AVAILABLE || attempt >= attempts) throw error;
      const waitMs = Math.min(5000, 250 * 2 ** (attempt - 1));
      log(`schema apply waited ${lockTimeoutMs} ms for a table lock (attempt ${attempt} of ${attempts}); retrying in ${waitMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, waitMs));
    } finally {
      await client.end();
    }
  }
}
