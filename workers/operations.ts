// The worker's operational side (issue 7): structured job logs carrying the request id that
// queued the job, job counters per task for /metrics, a heartbeat for /readyz, the settings the
// backup and slow-query tasks need, and their crontab lines (schedules from the environment).

import os from "node:os";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { Logger as GraphileLogger, type Runner } from "graphile-worker";
import type { Config } from "../core/config.ts";
import { rootLogger, type Logger } from "../core/logger.ts";

export interface OperationsContext {
  ownerUrl: string;
  /** Superuser URL when known (embedded, ROOT_DATABASE_URL): restore tests need it. */
  rootUrl: string | null;
  backupDir: string;
  backupRetentionDays: number;
  slowQueryMs: number;
  pgBinDir: string | null;
  logger: Logger;
}

let context: OperationsContext | null = null;

export function setOperationsContext(value: OperationsContext): void {
  context = value;
}

export function operationsContext(): OperationsContext {
  if (!context) throw new Error("operations context not set: start the worker through workers/runner.ts");
  return context;
}

export function operationsContextFrom(config: Config, ownerUrl: string, rootUrl: string | null): OperationsContext {
  return {
    ownerUrl,
    rootUrl,
    backupDir: config.backupDir,
    backupRetentionDays: config.backupRetentionDays,
    slowQueryMs: config.slowQueryMs,
    pgBinDir: config.pgBinDir,
    logger: rootLogger(),
  };
}

/** Crontab lines for the operational jobs; schedules come from BACKUP_CRON / BACKUP_VERIFY_CRON. */
export function operationsCrontab(config: Pick<Config, "backupCron" | "backupVerifyCron">): string {
  return [
    `${config.backupCron} db_backup ?max=2&jobKey=db_backup`,
    `${config.backupVerifyCron} db_verify_backup ?max=1&jobKey=db_verify_backup`,
    `*/5 * * * * slow_query_report ?max=1&jobKey=slow_query_report`,
    "",
  ].join("\n");
}

/** graphile-worker's own log lines, as JSON through pino. */
export function graphileLogger(logger: Logger): GraphileLogger {
  return new GraphileLogger((scope) => (level, message, meta) => {
    // graphile-worker attaches whole job rows; their payloads may carry tokens (e.g. invitation
    // links), so only the job's identity is kept.
    const { job, jobs, ...rest } = (meta ?? {}) as { job?: { id?: string; task_identifier?: string; attempts?: number }; jobs?: unknown[]; [key: string]: unknown };
    const fields = {
      worker: scope.workerId,
      task: scope.taskIdentifier ?? job?.task_identifier,
      jobId: scope.jobId ?? job?.id,
      ...(job ? { attempt: job.attempts } : {}),
      ...(jobs ? { jobCount: jobs.length } : {}),
      ...rest,
    };
    const method = level === "error" ? "error" : level === "warning" ? "warn" : level === "debug" ? "debug" : "info";
    logger[method](fields, message);
  });
}

/**
 * Logs every job with its task, id, attempt and the request id it was queued from (payloads may
 * carry `requestId`, e.g. `current_setting('tenantbase.request_id', true)` in the trigger that
 * queued it); counts outcomes per task; keeps a heartbeat row while the runner lives.
 */
export function attachOperations(runner: Runner, options: { ownerUrl: string; logger?: Logger; heartbeatMs?: number }): void {
  const logger = options.logger ?? rootLogger();
  const pool = new pg.Pool({ connectionString: options.ownerUrl, max: 2 });
  pool.on("error", () => {});
  pool.on("connect", (client) => client.on("error", () => {}));
  const workerId = `${os.hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
  const startedAt = new Date();

  const jobFields = (job: { id: string; task_identifier: string; attempts: number; payload: unknown }) => {
    const payload = job.payload as { requestId?: unknown } | null;
    return {
      jobId: job.id,
      task: job.task_identifier,
      attempt: job.attempts,
      ...(typeof payload?.requestId === "string" ? { requestId: payload.requestId } : {}),
    };
  };
  // Outcomes are added up here and written by one statement at a time: a write starts as soon as
  // the previous one is done, so counts reach the table within a round trip when jobs are few,
  // and a burst of jobs costs a few writes instead of a transaction per job (all updating the
  // same row). Stopping the runner writes what is left.
  let pending = new Map<string, { task: string; outcome: string; n: number }>();
  let writing: Promise<void> | null = null;
  const flush = (): Promise<void> => {
    if (writing || pending.size === 0) return writing ?? Promise.resolve();
    const counts = [...pending.values()];
    pending = new Map();
    writing = pool
      .query("select app_private.count_jobs($1, $2, $3)", [counts.map((c) => c.task), counts.map((c) => c.outcome), counts.map((c) => c.n)])
      .then(
        () => {},
        (error) => logger.warn({ err: error, counts }, "could not count job outcomes"),
      )
      .finally(() => {
        writing = null;
        void flush();
      });
    return writing;
  };
  const count = (task: string, outcome: "completed" | "failed") => {
    const key = `${task}\u0000${outcome}`;
    const entry = pending.get(key);
    if (entry) entry.n += 1;
    else pending.set(key, { task, outcome, n: 1 });
    void flush();
  };
  const flushAll = async () => {
    while (writing || pending.size > 0) await flush();
  };

  runner.events.on("job:start", ({ job }) => logger.info(jobFields(job), "job started"));
  runner.events.on("job:success", ({ job }) => {
    logger.info(jobFields(job), "job completed");
    count(job.task_identifier, "completed");
  });
  runner.events.on("job:error", ({ job, error }) => {
    const message = error instanceof Error ? error.message : String(error);
    logger.error({ ...jobFields(job), error: message }, "job failed");
    count(job.task_identifier, "failed");
  });
  runner.events.on("job:failed", ({ job }) => logger.error(jobFields(job), "job failed permanently (no attempts left)"));

  const beat = () =>
    pool
      .query(
        `insert into app_private.worker_heartbeats (worker_id, hostname, pid, started_at, last_seen_at)
         values ($1, $2, $3, $4, now())
         on conflict (worker_id) do update set last_seen_at = now()`,
        [workerId, os.hostname(), process.pid, startedAt],
      )
      .catch((error) => logger.warn({ err: error }, "worker heartbeat failed"));
  void beat();
  const timer = setInterval(beat, options.heartbeatMs ?? 10_000);
  timer.unref();
  let cleaned: Promise<void> | null = null;
  const cleanup = () =>
    (cleaned ??= (async () => {
      clearInterval(timer);
      await flushAll();
      await pool.query("delete from app_private.worker_heartbeats where worker_id = $1", [workerId]).catch(() => {});
      await pool.end().catch(() => {});
    })());
  // runner.stop() resolves only after the heartbeat row is gone and the pool is closed.
  const stop = runner.stop.bind(runner);
  runner.stop = async () => {
    try {
      await stop();
    } finally {
      await cleanup();
    }
  };
  void runner.promise.catch(() => {}).finally(cleanup);
}
