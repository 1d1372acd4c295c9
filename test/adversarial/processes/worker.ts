// A worker process for test/adversarial/worker-crash.test.ts: the project's own runner
// (workers/runner.ts) with one task that takes a row lock in a transaction, the way the Stripe
// task does, and logs when it starts and completes. Usage: node worker.ts <owner url>

import "../../../core/graphile-env.ts";
import pg from "pg";
import { startWorker } from "../../../workers/runner.ts";

const ownerUrl = process.argv[2];
const pool = new pg.Pool({ connectionString: ownerUrl, max: 4 });
pool.on("error", () => {});

const runner = await startWorker({
  ownerUrl,
  concurrency: 2,
  crontab: null,
  pollInterval: 500,
  unlockIntervalSeconds: 1,
  unlockGraceSeconds: 2,
  taskList: {
    adversarial_locked_job: async (_payload, helpers) => {
      const log = (event: string) =>
        pool.query("insert into public.adversarial_job_log (job_id, pid, event) values ($1, $2, $3)", [helpers.job.id, process.pid, event]);
      await log("started");
      const client = await pool.connect();
      try {
        await client.query("begin");
        await client.query("select n from public.adversarial_target where id = 1 for update");
        await client.query("update public.adversarial_target set n = n + 1 where id = 1");
        await client.query("insert into public.adversarial_job_log (job_id, pid, event) values ($1, $2, 'completed')", [helpers.job.id, process.pid]);
        await client.query("commit");
      } catch (error) {
        await client.query("rollback").catch(() => {});
        throw error;
      } finally {
        client.release();
      }
    },
  },
});
console.log("worker ready");
const stop = async () => {
  await runner.stop();
  await pool.end();
  process.exit(0);
};
process.on("SIGTERM", () => void stop());
process.on("SIGINT", () => void stop());
