// Jobs of a worker that died are freed in seconds, not hours.
//
// graphile-worker 0.18 marks a job it runs with locked_by = its pool id and frees locks only
// after 4 hours (resetLockedAt), so a worker killed mid-job (OOM, SIGKILL, a lost machine) would
// hold its jobs — a Stripe event, an invitation mail — for 4 hours. Every worker process here
// therefore proves it is alive through PostgreSQL itself: while its pool runs it holds a session
// advisory lock keyed by its pool id on a connection of its own. PostgreSQL drops that lock the
// moment the process's connection goes away. Every few seconds each worker looks for jobs locked
// by a pool whose lock nobody holds, and hands them back to the queue with graphile-worker's own
// force_unlock_workers(); another worker then runs them (every task is safe to run twice).
//
// No clock is trusted, no heartbeat interval is guessed: "alive" means "its session is open".
// The grace period covers only the moment between a pool starting and its lock being taken.
// Requires every worker to start through workers/runner.ts (a bare graphile-worker CLI process
// against the same database would look dead) and a direct connection (not PgBouncer).

import pg from "pg";
import type { WorkerEvents } from "graphile-worker";
import type { Logger } from "../core/logger.ts";

/** First key of the two-key advisory lock: a namespace of our own ("tb" in ASCII). */
export const LIVENESS_LOCK_CLASS = 0x7462;
export const SWEEP_INTERVAL_MS = 5_000;
/** A job locked less than this long ago is never considered orphaned. */
export const ORPHAN_GRACE_SECONDS = 10;

export interface Liveness {
  stop(): Promise<void>;
}

// Jobs (and job queues) locked by a pool whose liveness lock no session holds.
const ORPHANS_SQL = `
with locks as (
  select l.objid from pg_locks l
  where l.locktype = 'advisory' and l.granted and l.objsubid = 2 and l.classid = $1::int4::oid
    and l.database = (select d.oid from pg_database d where d.datname = current_database())
), dead as (
  select j.locked_by from graphile_worker._private_jobs j
  where j.locked_by is not null and j.locked_at < now() - make_interval(secs => $2)
    and hashtext(j.locked_by)::oid not in (select objid from locks)
  union
  select q.locked_by from graphile_worker._private_job_queues q
  where q.locked_by is not null and q.locked_at < now() - make_interval(secs => $2)
    and hashtext(q.locked_by)::oid not in (select objid from locks)
)
select array_agg(locked_by) as pools from dead`;

export function trackWorkerLiveness(
  events: WorkerEvents,
  options: { ownerUrl: string; logger: Logger; sweepIntervalMs?: number; graceSeconds?: number },
): Liveness {
  const { logger } = options;
  const poolIds = new Set<string>();
  let client: pg.Client | null = null;
  let connecting: Promise<pg.Client> | null = null;
  /** Pool ids whose lock the current session holds (advisory locks stack: take each once). */
  let locked = new Set<string>();
  let stopped = false;

  // One session for the locks and the sweeps; opened again (and the locks taken again) if it breaks.
  const session = (): Promise<pg.Client> =>
    (connecting ??= (async () => {
      const c = new pg.Client({ connectionString: options.ownerUrl, application_name: "tenantbase worker liveness" });
      c.on("error", (error) => {
        logger.warn({ err: error }, "worker liveness connection lost; reconnecting");
        if (client === c) client = null;
        connecting = null;
      });
      await c.connect();
      client = c;
      locked = new Set();
      return c;
    })().catch((error) => {
      connecting = null;
      throw error;
    }));

  const holdLocks = async () => {
    const c = await session();
    for (const id of poolIds) {
      if (locked.has(id)) continue;
      locked.add(id);
      await c.query("select pg_advisory_lock($1, hashtext($2))", [LIVENESS_LOCK_CLASS, id]);
    }
    return c;
  };

  events.on("pool:create", ({ workerPool }) => {
    poolIds.add(workerPool.id);
    logger.info({ workerPool: workerPool.id, pid: process.pid }, "worker pool started");
    void holdLocks().catch((error) => logger.warn({ err: error }, "could not take the worker liveness lock"));
  });
  events.on("pool:release", ({ workerPool }) => {
    poolIds.delete(workerPool.id);
    if (client && locked.delete(workerPool.id)) {
      void client.query("select pg_advisory_unlock($1, hashtext($2))", [LIVENESS_LOCK_CLASS, workerPool.id]).catch(() => {});
    }
  });

  const sweep = async () => {
    if (stopped) return;
    try {
      const c = await holdLocks();
      const { rows } = await c.query(ORPHANS_SQL, [LIVENESS_LOCK_CLASS, options.graceSeconds ?? ORPHAN_GRACE_SECONDS]);
      const dead: string[] | null = rows[0].pools;
      if (dead && dead.length > 0) {
        await c.query("select graphile_worker.force_unlock_workers($1::text[])", [dead]);
        logger.warn({ workerPools: dead }, "freed the jobs of worker pools that are gone (their processes died); other workers will run them");
      }
    } catch (error) {
      logger.warn({ err: error }, "worker liveness sweep failed; trying again");
    }
  };
  const timer = setInterval(() => void sweep(), options.sweepIntervalMs ?? SWEEP_INTERVAL_MS);
  timer.unref();
  void sweep();

  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      const c = client ?? (await connecting?.catch(() => null)) ?? null;
      await c?.end().catch(() => {});
    },
  };
}
