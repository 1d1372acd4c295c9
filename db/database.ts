// Decides which PostgreSQL to use and gets it ready, in the order docs/configuration.md gives ("Which PostgreSQL is used"):
//   1. DATABASE_URL + AUTH_DATABASE_URL: used as they are (roles and database must exist);
//   2. ROOT_DATABASE_URL: a superuser creates the roles and DATABASE_NAME if missing;
//   3. neither: an embedded PostgreSQL 15 under DATA_DIR/postgres, shared by every process of
//      ours on that DATA_DIR (npm start, db:watch, db:commit, db:seed, credits:grant): the first
//      starts it, the others connect to it (db/embedded.ts).
// Then migrations and policies are applied as the owner.

import path from "node:path";
import type { Config } from "../core/config.ts";
import { openEmbeddedPostgres } from "./embedded.ts";
import { loadLocalSecrets, type LocalSecrets } from "./secrets.ts";
import { ensureDatabase, ensureRoles, ROLES } from "./roles.ts";
import { withCredentials, redact } from "./urls.ts";
import { migrateDatabase } from "./migrate.ts";
import { ensureMonitoring } from "./monitoring.ts";
import { STARTUP_LOCKS, withStartupLock } from "./startup-lock.ts";

export interface Database {
  ownerUrl: string;
  authUrl: string;
  /** Superuser URL for the cluster's maintenance database, when we have one. */
  rootUrl: string | null;
  mode: "urls" | "root" | "embedded";
  /** With the embedded PostgreSQL: whether this process runs it (false: another process of ours does). */
  embeddedHere?: boolean;
  /** Stops the embedded PostgreSQL if we started it. */
  stop(): Promise<void>;
}

export async function connectDatabase(config: Config, log: (line: string) => void): Promise<Database> {
  if (config.databaseUrl && config.authDatabaseUrl) {
    return {
      ownerUrl: config.databaseUrl,
      authUrl: config.authDatabaseUrl,
      rootUrl: config.rootDatabaseUrl,
      mode: "urls",
      stop: async () => {},
    };
  }

  // The local secrets file is read (and created) only for a value the configuration leaves out:
  // a deployment that sets the role passwords and ROOT_DATABASE_URL never writes one.
  let secrets: LocalSecrets | undefined;
  const local = () => (secrets ??= loadLocalSecrets(config.dataDir));
  const ownerPassword = config.ownerPassword ?? local().ownerPassword;
  const authenticatorPassword = config.authenticatorPassword ?? local().authenticatorPassword;

  let rootUrl: string;
  let stop = async () => {};
  let mode: Database["mode"];
  let embeddedHere: boolean | undefined;
  if (config.rootDatabaseUrl) {
    rootUrl = config.rootDatabaseUrl;
    mode = "root";
  } else {
    const started = Date.now();
    const databaseDir = path.join(config.dataDir, "postgres");
    const cluster = await openEmbeddedPostgres({
      databaseDir,
      port: config.embeddedPostgresPort,
      password: local().embeddedSuperuserPassword,
      settings: { shared_preload_libraries: "pg_stat_statements" },
    });
    embeddedHere = cluster.startedHere;
    log(
      cluster.startedHere
        ? `embedded PostgreSQL 15 on 127.0.0.1:${cluster.port} (${Date.now() - started} ms; data in ${databaseDir})`
        : `using the embedded PostgreSQL already running on 127.0.0.1:${cluster.port} (process ${cluster.pid}, ` +
            `started by another command on this DATA_DIR; it stops when that command stops)`,
    );
    rootUrl = cluster.rootUrl;
    stop = cluster.stop;
    mode = "embedded";
  }

  try {
    // Several processes may start at once: each step waits for the one doing it (startup-lock.ts).
    const lock = { timeoutMs: config.startupLockTimeoutMs, log };
    await ensureRoles(rootUrl, { ownerPassword, authenticatorPassword }, lock);
    if (await ensureDatabase(rootUrl, config.databaseName, lock)) log(`created database ${config.databaseName}`);
  } catch (error) {
    await stop();
    throw new Error(`could not prepare the database through ${redact(rootUrl)}: ${(error as Error).message}`);
  }
  return {
    ownerUrl: withCredentials(rootUrl, ROLES.owner, ownerPassword, config.databaseName),
    authUrl: withCredentials(rootUrl, ROLES.authenticator, authenticatorPassword, config.databaseName),
    rootUrl,
    mode,
    embeddedHere,
    stop,
  };
}

export interface PrepareOptions {
  /** Also run db/migrations/current/ even in production (they always run outside production). */
  includeCurrent?: boolean;
}

export async function prepareDatabase(config: Config, log: (line: string) => void, options: PrepareOptions = {}): Promise<Database> {
  const database = await connectDatabase(config, log);
  try {
    // One process migrates and applies functions and policies; the others started with it wait
    // here (bounded) and then find nothing left to do. pg_stat_statements is created in the same
    // step: CREATE EXTENSION IF NOT EXISTS races too.
    await withStartupLock(
      database.ownerUrl,
      STARTUP_LOCKS.schema,
      "migrating the database",
      { timeoutMs: config.startupLockTimeoutMs, log },
      async () => {
        // Outside production, the uncommitted migrations in db/migrations/current/ run too (as
        // under db:watch and the tests): a table made with `npm run new:table` is served by
        // `npm start` and the e2e tests before anyone commits it. Production runs committed ones only.
        await migrateDatabase({ ownerUrl: database.ownerUrl, rootUrl: database.rootUrl, log, includeCurrent: options.includeCurrent || !config.isProduction });
        if (database.rootUrl) await ensureMonitoring(database.rootUrl, database.ownerUrl, {
          warn: (fields, message) => log(`${message} (${(fields as { error?: string }).error ?? "unknown reason"})`),
        });
      },
    );
  } catch (error) {
    // graphile-migrate keeps its pools for 200 ms after use and calls process.exit(1) if one of
    // their connections breaks: let them close before stopping the embedded Postgres, or the
    // real error would never be printed.
    await new Promise((resolve) => setTimeout(resolve, 300));
    await database.stop();
    throw error;
  }
  return database;
}
