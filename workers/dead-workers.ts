// Jobs held by a worker that died are given back at once, not after graphile-worker's 4 hours.
//
// graphile-worker 0.18 marks a job it takes with `locked_by` = the id of its worker pool and
// unlocks jobs only when their lock is 4 hours old; it offers `force_unlock_workers(ids)` (also
// WorkerUtils.forceUnlockWorkers) for ids that are known to be dead, and leaves knowing that to
// the application (heartbeats are a Worker Pro feature). Here PostgreSQL itself tells: each
// runner keeps one connection open whose application_name carries its pool id, and a process
// that dies (kill -9, OOM, a lost machine) loses that connection. Every runner, at start-up and
// every WORKER_UNLOCK_INTERVAL_SECONDS, unlocks the jobs and queues of pool ids that have no such
// connection any more.
//
// A lock younger than the grace period is left alone: a runner opens its liveness connection
// just after its pool exists, and may take a job in between. If a live runner's liveness
// connection drops (a network blip), its jobs may be unlocked and run again elsewhere: every task
// is safe to run twice (README, Workers).

import pg from "pg";
import type { Logger } from "../core/logger.ts";

export const LIVENESS_PREFIX = "tb-worker:";

export interface DeadWorkerOptions {
  ownerUrl: string;
  /** graphile-worker's pool id: what its jobs' locked_by holds. */
  poolId: string;
  intervalSeconds: number;
  /** Locks younger than this are never taken back. */
  graceSeconds: number;
  logger: Logger;
}

export interface DeadWorkerWatch {
  /** Unlocks the jobs of dead workers now; resolves to the pool ids unlocked. */
  sweep(): Promise<string[]>;
  stop(): Promise<void>;
}

/** Pool ids holding locks with no live runner behind them. */
const DEAD_LOCK_HOLDERS = `
  select distinct locked_by from (
    select locked_by, locked_at from graphile_worker._private_jobs where locked_by is not null
    union all
    select locked_by, locked_at from graphile_worker._private_job_queues where locked_by is not null
  ) locks
  where locked_at < now() - make_interval(secs => $1)
    and not exists (select 1 from pg_stat_activity a where a.application_name = $2 || locks.locked_by)`;

export async function watchDeadWorkers(options: DeadWorkerOptions): Promise<DeadWorkerWatch> {
  const { logger } = options;
  let stopped = false;
  let liveness: pg.Client | null = null;

  // The liveness connection: idle for the runner's whole life; reopened if it drops.
  const connect = async (): Promise<void> => {
    const client = new pg.Client({ connectionString: options.ownerUrl, application_name: `${LIVENESS_PREFIX}${options.poolId}` });
    client.on("error", () => {});
    client.on("end", () => {
      if (liveness === client) liveness = null;
      if (stopped) return;
      logger.warn({ poolId: options.poolId }, "worker liveness connection lost; reopening");
      setTimeout(() => void connect().catch(() => {}), 1000).unref();
    });
    await client.connect();
    liveness = client;
  };
  await connect();

  const pool = new pg.Pool({ connectionString: options.ownerUrl, max: 1 });
  pool.on("error", () => {});
  const sweep = async (): Promise<string[]> => {
    const { rows } = await pool.query<{ locked_by: string }>(DEAD_LOCK_HOLDERS, [options.graceSeconds, LIVENESS_PREFIX]);
    const ids = rows.map((row) => row.locked_by);
    if (ids.length > 0) {
      await pool.query("select graphile_worker.force_unlock_workers($1::text[])", [ids]);
      logger.warn({ deadWorkers: ids }, "unlocked the jobs of workers that died holding them");
    }
    return ids;
  };
  const run = () => void sweep().catch((error) => logger.warn({ err: error }, "dead-worker sweep failed"));
  run();
  const timer = setInterval(run, options.intervalSeconds * 1000);
  timer.unref();

  let stopping: Promise<void> | null = null;
  return {
    sweep,
    stop: () =>
      (stopping ??= (async () => {
        stopped = true;
        clearInterval(timer);
        await pool.end().catch(() => {});
        await liveness?.end().catch(() => {});
      })()),
  };
}
