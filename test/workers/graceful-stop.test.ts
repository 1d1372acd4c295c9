// Graceful shutdown of the worker: runner.stop() (what SIGTERM calls in server/main.ts and
// workers/main.ts) takes no new jobs and waits for the running one to finish; the job is not
// lost or retried, and the heartbeat row is removed.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { memoryLogger } from "../helpers/operations.ts";
import { startWorker } from "../../workers/runner.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

test("stop() waits for the running job, which completes; queued jobs stay queued", async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let started!: () => void;
  const running = new Promise<void>((resolve) => (started = resolve));
  const finished: string[] = [];
  const { logger } = memoryLogger();
  const runner = await startWorker({
    ownerUrl: db.ownerUrl,
    crontab: null,
    concurrency: 1,
    pollInterval: 200,
    taskList: {
      slow_job: async (payload: any) => {
        started();
        await gate;
        finished.push(payload.n);
      },
    },
    operations: { ownerUrl: db.ownerUrl, rootUrl: null, backupDir: "/nonexistent", backupRetentionDays: 30, slowQueryMs: 500, pgBinDir: null, logger },
  });
  await db.owner.query("select graphile_worker.add_job('slow_job', json_build_object('n', 'first'))");
  await running;
  await db.owner.query("select graphile_worker.add_job('slow_job', json_build_object('n', 'second'), run_at := now() + interval '1 hour')");

  let stopped = false;
  const stopping = runner.stop().then(() => {
    stopped = true;
  });
  await new Promise((r) => setTimeout(r, 300));
  expect(stopped).toBe(false); // still waiting for the running job
  release();
  await stopping;
  expect(finished).toEqual(["first"]);
  const { rows } = await db.owner.query("select payload->>'n' as n, attempts, locked_at is not null as locked, last_error from graphile_worker._private_jobs order by id");
  // the finished job is marked done (deleted), not left locked to run again later
  expect(rows).toEqual([{ n: "second", attempts: 0, locked: false, last_error: null }]);
  const beats = await db.owner.query("select count(*)::int as n from app_private.worker_heartbeats");
  expect(beats.rows[0].n).toBe(0);
});
