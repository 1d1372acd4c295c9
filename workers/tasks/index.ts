// Every task the worker runs, by identifier. One file per task in this folder; add yours here.
// Tasks must be safe to run twice (jobs can be retried after a crash), and jobs that could be
// queued twice carry a job_key.

import type { TaskList } from "graphile-worker";
import { stripeEvent, STRIPE_EVENT_TASK } from "./stripe_event.ts";

export const taskList: TaskList = {
  [STRIPE_EVENT_TASK]: stripeEvent,
};
