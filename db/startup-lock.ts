// The start-up lock: any number of servers and workers may start at the same moment against one
// database (every orchestrator does this on each deploy). Whatever only one of them should do —
// create the roles, create the database, migrate and apply functions and policies — runs under a
// session-level advisory lock; the others wait for it (bounded by STARTUP_LOCK_TIMEOUT_MS, with a
// log line when they start and stop waiting), then find the work done and go on.
//
// Why a lock of our own around the whole step: graphile-migrate takes its own lock with
// pg_try_advisory_lock and gives up at once ("Failed to get exclusive lock"), and a CREATE
// DATABASE or CREATE ROLE racing another fails with a duplicate error. A session lock (not a
// transaction lock) because the step spans many transactions and connections; it needs a direct
// connection, never one through PgBouncer in transaction mode.

import pg from "pg";

/** Advisory lock keys (hashtext of these names), one per thing that must not run twice at once. */
export const STARTUP_LOCKS = {
  /** In the maintenance database: CREATE/ALTER ROLE and CREATE DATABASE. */
  cluster: "tenantbase:cluster-setup",
  /** In the application database: worker schema, migrations, functions, policies, extensions. */
  schema: "tenantbase:schema-setup",
} as const;

/** Default of STARTUP_LOCK_TIMEOUT_MS (core/config.ts repeats it as the configured default). */
export const DEFAULT_STARTUP_LOCK_TIMEOUT_MS = 120_000;

export interface StartupLockOptions {
  /** How long to wait for another process to finish, in ms. */
  timeoutMs?: number;
  log?: (line: string) => void;
}

export class StartupLockTimeout extends Error {}

/**
 * Takes the named session advisory lock on `client` (waiting at most timeoutMs), runs fn, and
 * releases it. The caller owns the client; it must be a direct session.
 */
export async function withAdvisoryLock<T>(
  client: pg.Client,
  name: string,
  what: string,
  options: StartupLockOptions,
  fn: () => Promise<T>,
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_STARTUP_LOCK_TIMEOUT_MS;
  const log = options.log ?? (() => {});
  const { rows } = await client.query("select pg_try_advisory_lock(hashtext($1)) as got", [name]);
  if (!rows[0].got) {
    const started = Date.now();
    log(`waiting for another process to finish ${what} (up to ${timeoutMs} ms, STARTUP_LOCK_TIMEOUT_MS)`);
    // lock_timeout bounds the wait for an advisory lock too; it is set for this statement only.
    await client.query(`set lock_timeout = ${Math.max(1, Math.floor(timeoutMs))}`);
    try {
      await client.query("select pg_advisory_lock(hashtext($1))", [name]);
    } catch (error) {
      if ((error as { code?: string }).code === "55P03") {
        throw new StartupLockTimeout(
          `gave up after ${timeoutMs} ms waiting for another process to finish ${what} ` +
            `(raise STARTUP_LOCK_TIMEOUT_MS, or find the process holding advisory lock "${name}" in pg_locks)`,
        );
      }
      throw error;
    } finally {
      await client.query("reset lock_timeout").catch(() => {});
    }
    log(`another process finished ${what} after ${Date.now() - started} ms; going on`);
  }
  try {
    return await fn();
  } finally {
    await client.query("select pg_advisory_unlock(hashtext($1))", [name]).catch(() => {});
  }
}

/** withAdvisoryLock on a connection of its own to `url`, closed afterwards. */
export async function withStartupLock<T>(
  url: string,
  name: string,
  what: string,
  options: StartupLockOptions,
  fn: () => Promise<T>,
): Promise<T> {
  const client = new pg.Client({ connectionString: url, application_name: "tenantbase start-up lock" });
  client.on("error", () => {});
  await client.connect();
  try {
    return await withAdvisoryLock(client, name, what, options, fn);
  } finally {
    await client.end().catch(() => {});
  }
}
