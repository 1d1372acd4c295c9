// Finding 7: a worker killed mid-job left the job locked for about four hours (graphile-worker
// reclaims a lock only when it is that old), so a paid checkout stayed uncredited. Now every
// runner unlocks, at start-up and every few seconds, the jobs of workers whose process is gone
// (workers/liveness.ts). Proven with real processes: kill -9 a worker while its job waits on
// a row lock, start another, and the job completes exactly once within a minute.

import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { projectRoot } from "../../core/paths.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";

let db: TestDatabase;
const children: ChildProcess[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  await db.root.query(`
    create table public.adversarial_job_log (job_id bigint, pid int, event text, at timestamptz default clock_timestamp());
    create table public.adversarial_target (id int primary key, n int not null);
    insert into public.adversarial_target values (1, 0);
    grant all on public.adversarial_job_log, public.adversarial_target to app_owner;`);
});
afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await db?.drop();
});

function startWorkerProcess(): Promise<ChildProcess> {
  const child = spawn(process.execPath, [path.join("test", "adversarial", "processes", "worker.ts"), db.ownerUrl], {
    cwd: projectRoot,
    env: { ...process.env, LOG_LEVEL: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let output = "";
  return new Promise((resolve, reject) => {
    child.stdout!.on("data", (chunk) => {
      output += chunk;
      if (output.includes("worker ready")) resolve(child);
    });
    child.stderr!.on("data", (chunk) => (output += chunk));
    child.on("exit", (code) => reject(new Error(`worker exited (${code}) before it was ready:\n${output}`)));
  });
}

async function waitFor<T>(what: string, check: () => Promise<T | null | undefined | false>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`waited ${ms} ms for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const log = async () =>
  (await db.owner.query<{ pid: number; event: string }>("select pid, event from public.adversarial_job_log order by at")).rows;

test("kill -9 a worker mid-job, start another: the job completes exactly once within a minute", async () => {
  // The test holds the row the job needs, so the job is mid-transaction when its worker dies.
  const blocker = await db.root.connect();
  await blocker.query("begin");
  await blocker.query("select * from public.adversarial_target where id = 1 for update");
  try {
    const first = await startWorkerProcess();
    await db.owner.query("select graphile_worker.add_job('adversarial_locked_job', '{}')");
    await waitFor("the first worker to start the job", async () => (await log()).some((e) => e.pid === first.pid), 30_000);
    const { rows: locked } = await db.owner.query("select locked_by from graphile_worker.jobs where task_identifier = 'adversarial_locked_job'");
    expect(locked[0].locked_by).toEqual(expect.any(String));

    first.kill("SIGKILL");
    await new Promise((resolve) => first.once("exit", resolve));
    const killedAt = Date.now();
    const second = await startWorkerProcess();
    // Before: the job stayed locked by the dead worker (for 4 hours); no one started it again.
    await waitFor("another worker to take the job back", async () => (await log()).some((e) => e.pid === second.pid), 60_000);
    await blocker.query("commit");
    await waitFor(
      "the job to complete",
      async () => (await db.owner.query("select 1 from graphile_worker.jobs where task_identifier = 'adversarial_locked_job'")).rowCount === 0,
      60_000,
    );
    expect(Date.now() - killedAt).toBeLessThan(60_000);

    const events = await log();
    expect(events.filter((e) => e.event === "completed")).toEqual([{ pid: second.pid, event: "completed" }]);
    const { rows } = await db.owner.query("select n from public.adversarial_target where id = 1");
    expect(rows[0].n).toBe(1); // the dead worker's transaction never committed

    second.kill("SIGTERM");
    await new Promise((resolve) => second.once("exit", resolve));
  } finally {
    await blocker.query("rollback").catch(() => {});
    blocker.release();
  }
}, 180_000);
