// The database a benchmark runs against: BENCH_ROOT_DATABASE_URL (a superuser URL of any
// PostgreSQL 15+), else an embedded PostgreSQL 15 kept under .data/bench/ so that generated data
// sets survive between runs. Each data set lives in its own database, rebuilt only when the
// migrations or policies changed (its schema would be stale) or BENCH_REBUILD=1.

import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import { startEmbeddedPostgres } from "../../db/embedded.ts";
import { ensureDatabase, ensureRoles, ROLES } from "../../db/roles.ts";
import { migrateDatabase, MIGRATIONS_FOLDER } from "../../db/migrate.ts";
import { readSchemaFiles } from "../../db/apply-schema.ts";
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
 * Two hashes: "core" covers what a data set is made of (the committed migrations, and the
 * migrations and policies of plans, credits, generations and analytics: 1xx files); "all" covers
 * every migration and policy. A data set is rebuilt when core changed; when only other files
 * changed it is reused with a warning (regenerating 10M rows because an unrelated file changed
 * would make the benchmark unusable while the schema is being worked on).
 */
function schemaHashes(): { core: string; all: string } {
  const core = createHash("sha256");
  const all = createHash("sha256");
  const add = (file: string, content: Buffer, isCore: boolean) => {
    all.update(file).update(content);
    if (isCore) core.update(file).update(content);
  };
  for (const sub of ["committed", "current"]) {
    const dir = path.join(MIGRATIONS_FOLDER, sub);
    if (!existsSync(dir)) continue;
    for (const file of readdirSync(dir).filter((f) => f.endsWith(".sql")).sort()) {
      add(`${sub}/${file}`, readFileSync(path.join(dir, file)), sub === "committed" || /^1\d\d-/.test(file));
    }
  }
  // db/functions and db/policies: the foundation, plans and credits domains count as core.
  for (const file of readSchemaFiles()) {
    add(file.name, Buffer.from(file.sql), /^(functions|policies)\/(0|1)\d\d-/.test(file.name));
  }
  return { core: core.digest("hex").slice(0, 16), all: all.digest("hex").slice(0, 16) };
}

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

  const { core, all } = schemaHashes();
  const hash = `${core}:${all}`;
  const name = `tb_bench_${dataset}`;
  const root = new pg.Client({ connectionString: rootUrl });
  await root.connect();
  let fresh = false;
  try {
    const exists = (await root.query("select 1 from pg_database where datname = $1", [name])).rowCount === 1;
    const marker = exists ? (await root.query("select shobj_description(oid, 'pg_database') as d from pg_database where datname = $1", [name])).rows[0].d : null;
    const markerCore = typeof marker === "string" ? marker.split(":")[0] : null;
    if (exists && markerCore === core && marker !== hash && !rebuild && process.env.BENCH_REBUILD !== "1") {
      log(`${name}: migrations outside 1xx changed since it was made; reusing it (BENCH_REBUILD=1 to rebuild)`);
    }
    if (!exists || markerCore !== core || rebuild || process.env.BENCH_REBUILD === "1") {
      if (exists) {
        log(`${name}: ${markerCore === core ? "rebuild requested or last generation incomplete" : "its schema (1xx migrations or policies) changed since it was made"}; recreating`);
        await root.query(`drop database ${name} with (force)`);
      }
      await ensureDatabase(rootUrl, name);
      fresh = true;
    }
  } finally {
    await root.end();
  }
  const ownerUrl = withCredentials(rootUrl, ROLES.owner, state.ownerPassword, name);
  const authUrl = withCredentials(rootUrl, ROLES.authenticator, state.authenticatorPassword, name);
  if (fresh) {
    await migrateDatabase({ ownerUrl, rootUrl, includeCurrent: true });
    const root2 = new pg.Client({ connectionString: withDatabase(rootUrl, name) });
    await root2.connect();
    await root2.query(`comment on database ${name} is '${hash}'`);
    await root2.end();
  }
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
