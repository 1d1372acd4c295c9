// The database a benchmark runs against: BENCH_ROOT_DATABASE_URL (a superuser URL of any
// PostgreSQL 15+), else an embedded PostgreSQL 15 kept under .data/bench/ so that generated data
// sets survive between runs. Each data set lives in its own database, migrated forward on every
// run and regenerated only when that fails or BENCH_REBUILD=1.

import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import { startEmbeddedPostgres } from "../../db/embedded.ts";
import { ensureDatabase, ensureRoles, ROLES } from "../../db/roles.ts";
import { migrateDatabase } from "../../db/migrate.ts";
import { withCredentials, withDatabase } from "../../db/urls.ts";
import { projectRoot } from "../../core/paths.ts";
import { freePort } from "../../db/ports.ts";

export interface BenchDatabase {
  name: string;
  rootUrl: string;
  ownerUrl: string;
  authUrl: string;
  /** true when the database was (re)created and migrated now: generate the data set. */
  fresh: boolean;
  stop(): Promise<void>;
}

const STATE_DIR = path.join(projectRoot, ".data", "bench");


/**
 * A data set is generated once and then migrated forward like a production database: new
 * committed migrations, current/ migrations, functions and policies are applied to it on every
 * run (so a policy or helper change is measured at once, without regenerating 1M rows). It is
 * regenerated only when BENCH_REBUILD=1 or when migrating it forward fails.
 */
export async function benchDatabase(dataset: string, log: (line: string) => void = console.log, rebuild = false): Promise<BenchDatabase> {
  mkdirSync(STATE_DIR, { recursive: true });
  const stateFile = path.join(STATE_DIR, "cluster.json");
  const state = existsSync(stateFile)
    ? JSON.parse(readFileSync(stateFile, "utf8"))
    : { password: randomBytes(16).toString("hex"), ownerPassword: randomBytes(16).toString("hex"), authenticatorPassword: randomBytes(16).toString("hex") };
  writeFileSync(stateFile, JSON.stringify(state), { mode: 0o600 });

  let rootUrl = process.env.BENCH_ROOT_DATABASE_URL;
  let stop = async () => {};
  if (!rootUrl) {
    const cluster = await startEmbeddedPostgres({
      databaseDir: path.join(STATE_DIR, dataset, "pg"),
      port: await freePort(),
      password: state.password,
      settings: {
        max_connections: "200",
        shared_buffers: "1GB",
        work_mem: "16MB",
        maintenance_work_mem: "512MB",
        max_wal_size: "8GB",
        shared_preload_libraries: "pg_stat_statements",
      },
    });
    rootUrl = cluster.rootUrl;
    stop = () => cluster.stop();
  }
  await ensureRoles(rootUrl, { ownerPassword: state.ownerPassword, authenticatorPassword: state.authenticatorPassword });

  const name = `tb_bench_${dataset}`;
  const ownerUrl = withCredentials(rootUrl, ROLES.owner, state.ownerPassword, name);
  const authUrl = withCredentials(rootUrl, ROLES.authenticator, state.authenticatorPassword, name);
  const root = new pg.Client({ connectionString: rootUrl });
  await root.connect();
  let fresh = false;
  try {
    const exists = (await root.query("select 1 from pg_database where datname = $1", [name])).rowCount === 1;
    let recreate = !exists || rebuild || process.env.BENCH_REBUILD === "1";
    if (!recreate) {
      try {
        await migrateDatabase({ ownerUrl, rootUrl, includeCurrent: true });
      } catch (error) {
        log(`${name}: migrating it forward failed (${(error as Error).message}); recreating`);
        recreate = true;
      }
    }
    if (recreate) {
      if (exists) await root.query(`drop database ${name} with (force)`);
      await ensureDatabase(rootUrl, name);
      fresh = true;
    }
  } finally {
    await root.end();
  }
  if (fresh) await migrateDatabase({ ownerUrl, rootUrl, includeCurrent: true });
  return { name, rootUrl: withDatabase(rootUrl, name), ownerUrl, authUrl, fresh, stop };
}

/** Records that the data set finished generating (an interrupted run starts over). */
export async function markComplete(db: BenchDatabase, description: string): Promise<void> {
  const client = new pg.Client({ connectionString: db.ownerUrl });
  await client.connect();
  await client.query("create table if not exists app_private.bench_dataset (description text not null)");
  await client.query("delete from app_private.bench_dataset");
  await client.query("insert into app_private.bench_dataset values ($1)", [description]);
  await client.end();
}

export async function completedDataset(db: BenchDatabase): Promise<string | null> {
  const client = new pg.Client({ connectionString: db.ownerUrl });
  await client.connect();
  try {
    const { rows } = await client.query("select description from app_private.bench_dataset");
    return rows[0]?.description ?? null;
  } catch {
    return null;
  } finally {
    await client.end();
  }
}
