// Starts graphile-worker against the database as app_owner: in-process under `npm start`, or
// on its own under `npm run worker`. Several runners may work one database at once.

import { readFileSync } from "node:fs";
import path from "node:path";
import { run, type Runner, type TaskList } from "graphile-worker";
import { projectRoot } from "../server/paths.ts";
import { taskList as defaultTaskList } from "./tasks/index.ts";

export interface WorkerOptions {
  ownerUrl: string;
  concurrency?: number;
  /** Tests pass their own; default: workers/tasks/index.ts. */
  taskList?: TaskList;
  /** Tests turn the schedule off; default: workers/crontab. */
  crontab?: string | null;
  pollInterval?: number;
}

export function readCrontab(): string {
  return readFileSync(path.join(projectRoot, "workers", "crontab"), "utf8");
}

export async function startWorker(options: WorkerOptions): Promise<Runner> {
  return run({
    connectionString: options.ownerUrl,
    concurrency: options.concurrency ?? 4,
    noHandleSignals: true,
    pollInterval: options.pollInterval ?? 2000,
    taskList: options.taskList ?? defaultTaskList,
    crontab: options.crontab === null ? "" : (options.crontab ?? readCrontab()),
  });
}
