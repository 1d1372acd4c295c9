// /healthz answers while the process is up. /readyz says whether this server can serve:
//   critical (any failing -> HTTP 503 "unready", a load balancer stops sending traffic):
//     database_owner, database_authenticator: `select 1` as each role;
//     migrations: the newest committed migration is applied and the policies on disk are the
//       ones applied (a server from a newer release waits for its migrations);
//   informative (failing -> HTTP 200 "degraded", shown in details and in /metrics): the
//     newest worker heartbeat, the last backup and the last restore verification. A dead
//     worker must not take the API out of the load balancer; it pages through monitoring.
//     With backupsRequired false (development: NODE_ENV not production) a backup or verification
//     that has simply not run yet is not a fault (ok, with a note): a fresh install is "ready". A
//     backup or verification that ran and failed degrades it everywhere.

import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import type pg from "pg";
import { MIGRATIONS_FOLDER } from "../db/migrate.ts";
import { readSchema } from "../db/apply-schema.ts";

export interface CheckResult {
  ok: boolean;
  critical: boolean;
  [detail: string]: unknown;
}

export interface Readiness {
  status: "ready" | "degraded" | "unready";
  checks: Record<string, CheckResult>;
}

export interface ReadinessOptions {
  ownerPool: pg.Pool;
  authPool: pg.Pool;
  workerHeartbeatMaxAgeSeconds: number;
  timeoutMs?: number;
  /** Whether a backup (and a restore verification) not made yet degrades readiness; default true. */
  backupsRequired?: boolean;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** The hash in the header of the newest file in db/migrations/committed. */
export function latestCommittedMigrationHash(): string | null {
  const dir = path.join(MIGRATIONS_FOLDER, "committed");
  const files = readdirSync(dir).filter((file) => file.endsWith(".sql")).sort();
  const last = files.at(-1);
  if (!last) return null;
  const match = /^--! Hash: (\S+)$/m.exec(readFileSync(path.join(dir, last), "utf8"));
  return match ? match[1] : null;
}

function message(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text || (error as { code?: string })?.code || "unknown error";
}

export function makeReadiness(options: ReadinessOptions) {
  const timeoutMs = options.timeoutMs ?? 3000;
  // Read once: what this server's code expects of the database.
  const expectedMigration = latestCommittedMigrationHash();
  const expectedPolicies = readSchema().hash;
  const backupsRequired = options.backupsRequired ?? true;
  const notYet = (what: string): CheckResult =>
    backupsRequired
      ? { ok: false, critical: false, error: what }
      : { ok: true, critical: false, note: `${what} (not required in development)` };

  async function ping(pool: pg.Pool, what: string): Promise<CheckResult> {
    const started = Date.now();
    try {
      await withTimeout(pool.query("select 1"), timeoutMs, what);
      return { ok: true, critical: true, latencyMs: Date.now() - started };
    } catch (error) {
      return { ok: false, critical: true, error: message(error) };
    }
  }

  async function state(): Promise<Record<string, CheckResult>> {
    try {
      const { rows } = await withTimeout(
        options.ownerPool.query(`
          select
            (select hash from graphile_migrate.migrations order by date desc limit 1) as migration,
            (select hash from app_private.policy_state where id) as policies,
            (select json_build_object('workerId', worker_id, 'lastSeenAt', last_seen_at,
                    'ageSeconds', extract(epoch from now() - last_seen_at)::int)
               from app_private.worker_heartbeats order by last_seen_at desc limit 1) as worker,
            (select json_build_object('file', file, 'ok', ok, 'finishedAt', finished_at, 'details', details)
               from app_private.backup_runs where kind = 'backup' order by finished_at desc limit 1) as backup,
            (select json_build_object('file', file, 'ok', ok, 'finishedAt', finished_at, 'details', details)
               from app_private.backup_runs where kind = 'verify' order by finished_at desc limit 1) as verify`),
        timeoutMs,
        "state query",
      );
      const row = rows[0];
      const migrationsOk = expectedMigration === null || row.migration === expectedMigration;
      const policiesOk = row.policies === expectedPolicies;
      const worker = row.worker as { ageSeconds: number } | null;
      return {
        migrations: {
          ok: migrationsOk && policiesOk,
          critical: true,
          ...(migrationsOk ? {} : { error: "the newest committed migration is not applied: run npm run db:migrate" }),
          ...(policiesOk ? {} : { policies: "db/functions or db/policies differ from what is applied: run npm run db:migrate" }),
        },
        worker: worker
          ? {
              ok: worker.ageSeconds <= options.workerHeartbeatMaxAgeSeconds,
              critical: false,
              ...worker,
              maxAgeSeconds: options.workerHeartbeatMaxAgeSeconds,
            }
          : { ok: false, critical: false, error: "no worker has reported a heartbeat" },
        backup: row.backup
          ? { ok: row.backup.ok, critical: false, ...row.backup }
          : notYet("no backup has been made yet"),
        backup_verification: row.verify
          ? { ok: row.verify.ok, critical: false, ...row.verify }
          : notYet("no backup has been restore-tested yet"),
      };
    } catch (error) {
      return { migrations: { ok: false, critical: true, error: message(error) } };
    }
  }

  return async function readiness(): Promise<Readiness> {
    const [owner, authenticator, rest] = await Promise.all([
      ping(options.ownerPool, "owner connection"),
      ping(options.authPool, "authenticator connection"),
      state(),
    ]);
    const checks = { database_owner: owner, database_authenticator: authenticator, ...rest };
    const values = Object.values(checks);
    const status = values.some((c) => c.critical && !c.ok)
      ? "unready"
      : values.some((c) => !c.ok)
        ? "degraded"
        : "ready";
    return { status, checks };
  };
}
