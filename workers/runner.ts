// Starts graphile-worker against the database as app_owner: in-process under `npm start`, or
// on its own under `npm run worker`. Several runners may work one database at once.

import { readFileSync } from "node:fs";
import path from "node:path";
import { EventEmitter } from "node:events";
import { run, type Runner, type TaskList, type WorkerEvents } from "graphile-worker";
import { projectRoot } from "../core/paths.ts";
import { taskList as defaultTaskList } from "./tasks/index.ts";
import { attachOperations, graphileLogger, setOperationsContext, type OperationsContext } from "./operations.ts";
import { rootLogger } from "../core/logger.ts";
import { watchDeadWorkers } from "./dead-workers.ts";

export interface WorkerOptions {
  ownerUrl: string;
  concurrency?: number;
  /** Tests pass their own; default: workers/tasks/index.ts. */
  taskList?: TaskList;
  /** Tests turn the schedule off; default: workers/crontab. */
  crontab?: string | null;
  pollInterval?: number;
  /** Settings of the backup and slow-query tasks (workers/operations.ts). */
  operations?: OperationsContext;
  /** Crontab lines added to workers/crontab (operationsCrontab(config): backup schedules). */
  extraCrontab?: string;
  /** How often to unlock jobs of workers that died holding them (WORKER_UNLOCK_INTERVAL_SECONDS). */
  unlockIntervalSeconds?: number;
  /** Locks younger than this are never taken back (default 10 s; tests shorten it). */
  unlockGraceSeconds?: number;
}

export function readCrontab(): string {
  return readFileSync(path.join(projectRoot, "workers", "crontab"), "utf8");
}

export async function startWorker(options: WorkerOptions): Promise<Runner> {
  if (options.operations) setOperationsContext(options.operations);
  const logger = options.operations?.logger ?? rootLogger();
  // graphile-worker names its pool when it creates it; jobs it takes carry that id.
  const events: WorkerEvents = new EventEmitter();
  let poolId: string | null = null;
  events.on("pool:create", ({ workerPool }) => (poolId ??= workerPool.id));
  const runner = await run({
    events,
    logger: graphileLogger(logger),
    // Completions and failures go through graphile-worker's batcher, which a graceful stop
    // flushes. Without it (0.18's default) a job that finishes during stop() is not marked done
    // before the pool closes: it stays locked and runs again hours later.
    preset: { worker: { completeJobBatchDelay: 0, failJobBatchDelay: 0 } },
    connectionString: options.ownerUrl,
    concurrency: options.concurrency ?? 4,
    noHandleSignals: true,
    pollInterval: options.pollInterval ?? 2000,
    taskList: options.taskList ?? defaultTaskList,
    crontab: options.crontab === null ? "" : (options.crontab ?? readCrontab() + "\n" + (options.extraCrontab ?? "")),
  });
  attachOperations(runner, { ownerUrl: options.ownerUrl, logger });
  if (poolId === null) throw new Error("graphile-worker started without announcing its worker pool");
  const watch = await watchDeadWorkers({
    ownerUrl: options.ownerUrl,
    poolId,
    intervalSeconds: options.unlockIntervalSeconds ?? 15,
    graceSeconds: options.unlockGraceSeconds ?? 10,
    logger,
  });
  // The liveness connection closes only after the runner has finished (and so unlocked) its
  // jobs: closed earlier, another runner could take back jobs still running here.
  const stop = runner.stop.bind(runner);
  runner.stop = async (...args) => {
    try {
      await stop(...args);
    } finally {
      await watch.stop();
    }
  };
  void runner.promise.catch(() => {}).finally(() => watch.stop());
  return runner;
}
