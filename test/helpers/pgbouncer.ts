// PgBouncer (Debian's package) in transaction mode in front of the test cluster, for the second
// CI run of the API suite (TEST_PGBOUNCER=1). global-setup starts it; test databases then hand
// out URLs through it (test/helpers/db.ts), so every server under test and every `db.as` goes
// through PgBouncer. Migrations and CREATE/DROP DATABASE stay direct.

import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ROLES } from "../../db/roles.ts";
import { freePort, portOpen } from "../../db/ports.ts";

export const PGBOUNCER = process.env.PGBOUNCER_PATH ?? "/usr/sbin/pgbouncer";



export interface PgBouncer {
  port: number;
  pid: number;
  dir: string;
}

export async function startPgBouncer(options: {
  rootUrl: string;
  ownerPassword: string;
  authenticatorPassword: string;
}): Promise<PgBouncer> {
  if (!existsSync(PGBOUNCER)) {
    throw new Error(`TEST_PGBOUNCER is set but ${PGBOUNCER} is missing: apt-get install pgbouncer (.ci/run does)`);
  }
  const target = new URL(options.rootUrl);
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), "tenantbase-pgbouncer-"));
  // Under root PgBouncer runs as the postgres user, which writes its log and pid file here.
  chmodSync(dir, 0o777);
  const quote = (value: string) => `"${value.replace(/"/g, '""')}"`;
  writeFileSync(
    path.join(dir, "userlist.txt"),
    [
      `${quote(ROLES.owner)} ${quote(options.ownerPassword)}`,
      `${quote(ROLES.authenticator)} ${quote(options.authenticatorPassword)}`,
      "",
    ].join("\n"),
    { mode: 0o644 },
  );
  writeFileSync(
    path.join(dir, "pgbouncer.ini"),
    `[databases]
* = host=${target.hostname} port=${target.port || 5432}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = ${dir}/userlist.txt
pool_mode = transaction
max_client_conn = 2000
default_pool_size = 20
ignore_startup_parameters = extra_float_digits,options
logfile = ${dir}/pgbouncer.log
pidfile = ${dir}/pgbouncer.pid
`,
    { mode: 0o644 },
  );
  // PgBouncer refuses to run as root; -u switches to the postgres user.
  const args = [...(process.getuid?.() === 0 ? ["-u", "postgres"] : []), path.join(dir, "pgbouncer.ini")];
  const child: ChildProcess = spawn(PGBOUNCER, args, { stdio: "ignore", detached: true });
  child.unref();
  for (let i = 0; i < 100; i++) {
    if (await portOpen(port)) return { port, pid: child.pid!, dir };
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const log = existsSync(path.join(dir, "pgbouncer.log")) ? readFileSync(path.join(dir, "pgbouncer.log"), "utf8") : "";
  throw new Error(`PgBouncer did not start on port ${port}: ${log.slice(-2000)}`);
}

export async function stopPgBouncer(bouncer: PgBouncer): Promise<void> {
  const alive = () => {
    try {
      process.kill(bouncer.pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (alive()) process.kill(bouncer.pid, "SIGTERM");
  // It logs its exit into the folder: remove the folder only once it is gone.
  for (let i = 0; i < 100 && alive(); i++) await new Promise((r) => setTimeout(r, 50));
  rmSync(bouncer.dir, { recursive: true, force: true });
}

/** The same URL with host and port of the pooler, when one runs (TB_TEST_POOLER_PORT). */
export function throughPooler(url: string): string {
  const port = process.env.TB_TEST_POOLER_PORT;
  if (!port) return url;
  const parsed = new URL(url);
  parsed.hostname = "127.0.0.1";
  parsed.port = port;
  return parsed.toString();
}
