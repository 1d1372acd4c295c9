// Starts graphile-worker against the database as app_owner: in-process under `npm start`, or
// on its own under `npm run worker`. Several runners may work one database at once.

import { readFileSync } from "node:fs";
import { EventEmitter } from "node:events";
import path from "node:path";
import { run, type Runner, type TaskList, type WorkerEvents } from "graphile-worker";
import { projectRoot } from "../core/paths.ts";
import { taskList as defaultTaskList } from "./tasks/index.ts";
import { attachOperations, graphileLogger, setOperationsContext, type OperationsContext } from "./operations.ts";
import { rootLogger } from "../core/logger.ts";
import { trackWorkerLiveness } from "./liveness.ts";
import { outboundWebhooksConfig } from "../core/config.ts";
import { writeWebhookSettings } from "./webhooks/settings.ts";

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
  await writeWebhookSettings(options.ownerUrl, outboundWebhooksConfig());
  const logger = options.operations?.logger ?? rootLogger();
  // Our own emitter, so the liveness lock is taken as soon as the pool exists (workers/liveness.ts).
  const events = new EventEmitter() as WorkerEvents;
  const liveness = trackWorkerLiveness(events, {
    ownerUrl: options.ownerUrl,
    logger,
    sweepIntervalMs: (options.unlockIntervalSeconds ?? 5) * 1000,
    graceSeconds: options.unlockGraceSeconds ?? 10,
  });
  let runner: Runner;
  try {
    runner = await run({
      events,
      logger: graphileLogger(logger),
      // Completions and failures go through graphile-worker's batcher, which a graceful stop
      // flushes. Without it (0.18's default) a job that finishes during stop() is not marked done
      // before the pool closes: it stays locked and runs again hours later.
      //
      // The local queue fetches (and locks) up to concurrency + 1 jobs in one query instead of one
      // query per job: under a burst (Stripe events) that query was a large share of the work. A
      // worker that dies with jobs in its local queue has them freed by workers/liveness.ts.
      preset: {
        worker: {
          completeJobBatchDelay: 0,
          failJobBatchDelay: 0,
          localQueue: { size: (options.concurrency ?? 4) + 1 },
        },
      },
      connectionString: options.ownerUrl,
      concurrency: options.concurrency ?? 4,
      noHandleSignals: true,
      pollInterval: options.pollInterval ?? 2000,
      taskList: options.taskList ?? defaultTaskList,
      crontab: options.crontab === null ? "" : (options.crontab ?? readCrontab() + "\n" + (options.extraCrontab ?? "")),
    });
  } catch (error) {
    await liveness.stop();
    throw error;
  }
  attachOperations(runner, { ownerUrl: options.ownerUrl, logger });
  const stop = runner.stop.bind(runner);
  runner.stop = async (reason?: string) => {
    try {
      await stop(reason);
    } finally {
      await liveness.stop();
    }
  };
  void runner.promise.catch(() => {}).finally(() => liveness.stop());
  return runner;
}
