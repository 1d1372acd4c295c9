// Scale-out with real processes: 3 web-only servers (`WORKER=off npm start`) and 2 standalone
// workers (`npm run worker`) started at the same moment against one database that does not
// exist yet (ROOT_DATABASE_URL + a fresh DATABASE_NAME). All five come up; exactly one of them
// runs the migrations, the others wait for it (db/startup-lock.ts).
//
// Then a mixed load through all of them at once:
//   * 60 reservations racing for one organization's 100 credits, spread over the three servers,
//     then each captured or released through another server than it was made on;
//   * 20 Stripe checkout events, each delivered to all three servers at once;
//   * invitations sent through one server and accepted through another.
// In the middle, one server and one worker are killed with SIGKILL. The worker is killed while
// it holds Stripe jobs (they are made to wait on a row lock the test holds), so its jobs are
// locked by a process that no longer exists: the surviving worker must free and run them
// (workers/liveness.ts). Requests that hit the dead server are retried on another one with the
// same idempotency key, as a load balancer's client would.
//
// Then every invariant: ledger = balances, counters = recomputed, each Stripe grant once, each
// event applied by exactly one committed run (or, for the dead worker's jobs, applied again with
// no effect), each invitation mailed at most once and its mail job run, no job left locked.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { randomBytes } from "node:crypto";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { projectRoot } from "../../core/paths.ts";
import { freePort } from "../../db/ports.ts";
import { withDatabase } from "../../db/urls.ts";
import { TEST_JWT } from "../helpers/server.ts";
import { TEST_WEBHOOK_SECRET, checkoutSessionObject, deliver, stripeEvent, T0, type StripeEvent } from "../helpers/stripe.ts";

jest.setTimeout(180_000);

interface Proc {
  name: string;
  kind: "server" | "worker";
  child: ChildProcess;
  output: string[];
  port: number | null;
  exit: Promise<number | null>;
  dead: boolean;
}

const rootUrl = () => process.env.TB_TEST_ROOT_URL!;
const databaseName = `tb_scaleout_${randomBytes(4).toString("hex")}`;
let dataDir: string;
let outboxDir: string;
const procs: Proc[] = [];
let root: pg.Pool;

function spawnProc(name: string, kind: Proc["kind"], port: number | null): Proc {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: "development",
    ROOT_DATABASE_URL: rootUrl(),
    DATABASE_NAME: databaseName,
    // The roles are cluster-wide and other test files use them right now: keep their passwords.
    DATABASE_OWNER_PASSWORD: process.env.TB_TEST_OWNER_PASSWORD,
    DATABASE_AUTHENTICATOR_PASSWORD: process.env.TB_TEST_AUTHENTICATOR_PASSWORD,
    JWT_SECRET: TEST_JWT.secret,
    DATA_DIR: dataDir,
    OUTBOX_DIR: outboxDir,
    STRIPE_SECRET_KEY: "sk_test_fake123",
    STRIPE_WEBHOOK_SECRET: TEST_WEBHOOK_SECRET,
    WORKER: "off",
    WORKER_CONCURRENCY: "4",
    HOST: "127.0.0.1",
    LOG_LEVEL: "info",
    ...(process.env.LOG_FILE ? { LOG_FILE: process.env.LOG_FILE } : {}),
    ...(port ? { PORT: String(port) } : {}),
  };
  const script = kind === "server" ? "server/main.ts" : "workers/main.ts";
  const child = spawn(process.execPath, [script], { cwd: projectRoot, env, stdio: ["ignore", "pipe", "pipe"] });
  const output: string[] = [];
  child.stdout!.on("data", (chunk: Buffer) => output.push(chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => output.push(chunk.toString()));
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const proc: Proc = { name, kind, child, output, port, exit, dead: false };
  void exit.then(() => (proc.dead = true));
  return proc;
}

async function ready(proc: Proc): Promise<void> {
  const marker = proc.kind === "server" ? "GraphQL:" : "worker running";
  const deadline = Date.now() + 120_000;
  while (!proc.output.join("").includes(marker)) {
    if (proc.dead) throw new Error(`${proc.name} exited during start-up:\n${proc.output.join("")}`);
    if (Date.now() > deadline) throw new Error(`${proc.name} not ready after 120 s:\n${proc.output.join("")}`);
    await sleep(50);
  }
}

function logLines(proc: Proc): any[] {
  return proc.output
    .join("")
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false>, seconds = 60): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const servers = () => procs.filter((p) => p.kind === "server");
const workers = () => procs.filter((p) => p.kind === "worker");

/**
 * POST /graphql to server `via` (an index); when that server is gone (connection refused or
 * reset), the same request goes to the next live server, as behind a load balancer. Returns the
 * answer and which server gave it.
 */
async function gql(via: number, query: string, variables: object, token?: string): Promise<{ body: any; server: number }> {
  for (let attempt = 0; attempt < 6; attempt++) {
    const index = (via + attempt) % 3;
    const server = servers()[index];
    if (server.dead) continue;
    try {
      const response = await fetch(`http://127.0.0.1:${server.port}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify({ query, variables }),
      });
      return { body: await response.json(), server: index };
    } catch {
      failovers += 1;
      await sleep(20); // the server died under this request: try another one
    }
  }
  throw new Error("no server answered");
}

/** Delivers a Stripe event to server `via`, or the next live one if it is gone. */
async function deliverVia(via: number, event: StripeEvent): Promise<{ status: number; body: any }> {
  for (let attempt = 0; attempt < 6; attempt++) {
    const server = servers()[(via + attempt) % 3];
    if (server.dead) continue;
    try {
      return await deliver(`http://127.0.0.1:${server.port}`, event);
    } catch {
      failovers += 1;
      await sleep(20);
    }
  }
  throw new Error("no server took the delivery");
}

/** Requests that a dead server did not answer and another one did. */
let failovers = 0;

const code = (body: any): string | undefined => body.errors?.[0]?.extensions?.code;

async function register(via: number, email: string): Promise<{ token: string; id: string }> {
  const { body } = await gql(via, `mutation($e: String!) { register(input: {email: $e, password: "correct horse battery", name: "Load"}) { jwtToken } }`, { e: email });
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  const token = body.data.register.jwtToken as string;
  const me = await gql(via + 1, `{ currentUser { id } }`, {}, token);
  return { token, id: me.body.data.currentUser.id };
}

async function createOrganization(via: number, token: string, name: string): Promise<string> {
  const { body } = await gql(via, `mutation($n: String!) { createOrganization(input: {name: $n}) { organization { id } } }`, { n: name }, token);
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data.createOrganization.organization.id;
}

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), "tenantbase-scaleout-"));
  outboxDir = path.join(dataDir, "outbox");
  root = new pg.Pool({ connectionString: withDatabase(rootUrl(), databaseName), max: 4 });
  root.on("error", () => {});
});

afterAll(async () => {
  for (const proc of procs) if (!proc.dead) proc.child.kill("SIGKILL");
  await Promise.all(procs.map((proc) => proc.exit));
  await root?.end();
  const admin = new pg.Client({ connectionString: rootUrl() });
  await admin.connect();
  await admin.query(`drop database if exists ${databaseName} with (force)`).catch(() => {});
  await admin.end();
  rmSync(dataDir, { recursive: true, force: true });
});

test("3 servers and 2 workers started at once all come up; one migrates, the others wait", async () => {
  const ports = [await freePort(), await freePort(), await freePort()];
  // All five at the same moment, against a database that does not exist yet.
  procs.push(
    spawnProc("server-1", "server", ports[0]),
    spawnProc("server-2", "server", ports[1]),
    spawnProc("server-3", "server", ports[2]),
    spawnProc("worker-1", "worker", null),
    spawnProc("worker-2", "worker", null),
  );
  await Promise.all(procs.map(ready));

  const migrated = procs.filter((p) => p.output.join("").includes("Running migration"));
  expect(migrated.map((p) => p.name)).toHaveLength(1);
  const created = procs.filter((p) => p.output.join("").includes(`created database ${databaseName}`));
  expect(created).toHaveLength(1);
  for (const proc of procs) expect(proc.output.join("")).not.toMatch(/Failed to get exclusive lock|start-up failed/);
  const waited = procs.filter((p) => p !== migrated[0] && p.output.join("").includes("waiting for another process to finish migrating"));
  console.log(`migrated by ${migrated[0].name}, database created by ${created[0].name}; ${waited.length} of the 4 others waited for the migration`);
});

test("a mixed load through every process, one server and one worker killed in the middle: nothing lost, every invariant holds", async () => {
  // --- Cast: one organization racing for credits, one buying credits through Stripe, one inviting.
  const owner = await register(0, "owner@scale.example");
  const racing = await createOrganization(1, owner.token, "Racing");
  const buying = await createOrganization(2, owner.token, "Buying");
  const inviting = await createOrganization(0, owner.token, "Inviting");
  await root.query("update app_public.organizations set plan_id = 'enterprise' where id = $1", [inviting]);
  const { rows: pack } = await root.query(
    "insert into app_public.credit_packages (name, credits, stripe_price_id) values ('500 credits', 500, 'price_pack_500') returning id",
  );
  const invitees = await Promise.all(Array.from({ length: 9 }, (_, i) => register(i, `invitee${i}@scale.example`)));
  // Invitations need verified addresses; the verification flow has its own tests (test/api/accounts*).
  await root.query("update app_public.users set email_verified_at = now() where email like '%@scale.example'");
  const { rows: before } = await root.query("select available::int from app_public.credit_accounts where organization_id = $1", [racing]);
  const startingCredits = before[0].available as number; // the free plan's monthly allowance
  expect(startingCredits).toBeGreaterThan(0);

  // --- Hold the buying organization's credit account: every worker that takes one of its Stripe
  // jobs blocks inside it, so a worker can be killed while it holds jobs.
  const blocker = new pg.Client({ connectionString: withDatabase(rootUrl(), databaseName) });
  await blocker.connect();
  await blocker.query("begin");
  await blocker.query("select 1 from app_public.credit_accounts where organization_id = $1 for update", [buying]);

  const events = Array.from({ length: 20 }, (_, i) =>
    stripeEvent(
      "checkout.session.completed",
      checkoutSessionObject({ id: `cs_test_scale${i}`, customer: "cus_scale", organizationId: buying, creditPackageId: pack[0].id, amountTotal: 900 }),
      T0 + i,
    ),
  );
  // Every event to all three servers at once.
  const deliveries = events.flatMap((event) => [0, 1, 2].map((via) => deliverVia(via, event).then((r) => ({ event: event.id, ...r }))));

  // Reservations: 60 × 5 credits racing for the racing organization's credits, round-robin.
  const amount = 5;
  const reserve = (i: number) =>
    gql(i, `mutation($o: UUID!, $k: String!) { reserveCredits(input: {organizationId: $o, amount: "${amount}", idempotencyKey: $k, ttlSeconds: 600}) { creditReservation { id } } }`,
      { o: racing, k: `race-${i}` }, owner.token);
  const wave1 = Array.from({ length: 30 }, (_, i) => reserve(i));

  // Invitations: sent through server i, accepted through server i + 1.
  const invitations = invitees.map(async (invitee, i) => {
    let sent = await gql(i, `mutation($o: UUID!, $e: String!) { inviteMember(input: {organizationId: $o, email: $e, role: member}) { invitation { id } invitationToken } }`,
      { o: inviting, e: `invitee${i}@scale.example` }, owner.token);
    let payload = sent.body.data?.inviteMember;
    const resent = code(sent.body) === "INVITATION_ALREADY_PENDING";
    if (resent) {
      // A server died after storing the invitation and before answering, and the retry went to
      // another: the token went with the lost answer. As a client would, ask for a new one.
      const { rows } = await root.query("select id from app_public.invitations where organization_id = $1 and email = $2 and status = 'pending'", [inviting, `invitee${i}@scale.example`]);
      sent = await gql(i, `mutation($id: UUID!) { resendInvitation(input: {id: $id}) { invitation { id } invitationToken } }`, { id: rows[0].id }, owner.token);
      payload = sent.body.data?.resendInvitation;
    }
    if (sent.body.errors) throw new Error(JSON.stringify(sent.body.errors));
    const { invitation, invitationToken } = payload;
    const accepted = await gql(i + 1, `mutation($t: String!) { acceptInvitation(input: {token: $t}) { membership { userId } } }`, { t: invitationToken }, invitee.token);
    // A retry after a server died mid-request may find the invitation already used: the
    // membership check below tells whether it was.
    if (accepted.body.errors && code(accepted.body) !== "INVITATION_INVALID") throw new Error(JSON.stringify(accepted.body.errors));
    return { invitationId: invitation.id as string, sentVia: sent.server, acceptedVia: accepted.server, userId: invitee.id, resent };
  });

  // --- Wait until both workers hold Stripe jobs (blocked on the row lock), then kill.
  const logsOf = (proc: Proc) => logLines(proc);
  const poolsOf = (proc: Proc) => new Set(logsOf(proc).filter((l) => l.msg === "worker pool started").map((l) => l.workerPool));
  const holders = await waitFor("Stripe jobs held by a worker", async () => {
    const { rows } = await root.query("select distinct locked_by from graphile_worker.jobs where task_identifier = 'stripe_events' and locked_by is not null");
    const lockedBy = new Set(rows.map((r) => r.locked_by));
    const holding = workers().filter((w) => [...poolsOf(w)].some((id) => lockedBy.has(id)));
    return holding.length > 0 ? holding : null;
  });
  const victimWorker = holders[0];
  const survivor = workers().find((w) => w !== victimWorker)!;
  const { rows: heldRows } = await root.query(
    `select count(*)::int as n,
            coalesce((select array_agg(e ->> 'eventId') from graphile_worker._private_jobs j, json_array_elements(j.payload) e
                      where j.locked_by = any($1) and json_typeof(j.payload) = 'array'), '{}') as keys,
            coalesce(array_agg(key) filter (where key is not null), '{}') as job_keys
     from graphile_worker._private_jobs where locked_by = any($1)`, [[...poolsOf(victimWorker)]]);
  const heldJobKeys = new Set<string>(heldRows[0].job_keys);
  // Stripe jobs name their events in the payload: the events the killed worker held (it may have
  // applied some just before dying, so another worker applies them again: the grant must still be once).
  const heldEvents = new Set<string>(heldRows[0].keys);

  const wave2 = Array.from({ length: 30 }, (_, i) => reserve(30 + i));
  await sleep(30);
  const victimServer = servers()[2];
  victimServer.child.kill("SIGKILL");
  victimWorker.child.kill("SIGKILL");
  await Promise.all([victimServer.exit, victimWorker.exit]);
  console.log(`killed ${victimServer.name} and ${victimWorker.name} (holding ${heldRows[0].n} jobs)`);
  await blocker.query("rollback");
  await blocker.end();

  // --- Everything sent arrives.
  const reservations = await Promise.all([...wave1, ...wave2]);
  const delivered = await Promise.all(deliveries);
  const joined = await Promise.all(invitations);

  console.log(`${failovers} requests failed over from the killed server to another one`);
  const reserved = reservations.filter((r) => !r.body.errors).map((r) => r.body.data.reserveCredits.creditReservation.id as string);
  const refused = reservations.filter((r) => r.body.errors);
  expect(refused.map((r) => code(r.body))).toEqual(refused.map(() => "INSUFFICIENT_CREDITS"));
  // Exactly as many as the credits allow: no reservation lost, none twice (idempotency keys).
  expect(new Set(reserved).size).toBe(Math.floor(startingCredits / amount));
  expect(reserved).toHaveLength(new Set(reserved).size);

  // Capture even ones, release odd ones, each through a server other than the one that reserved.
  await Promise.all(reserved.map((id, i) =>
    i % 2 === 0
      ? gql(i + 1, `mutation($r: UUID!, $k: String!) { captureCredits(input: {reservationId: $r, amount: "${amount}", idempotencyKey: $k}) { clientMutationId } }`, { r: id, k: `cap-${id}` }, owner.token)
      : gql(i + 2, `mutation($r: UUID!, $k: String!) { releaseCredits(input: {reservationId: $r, idempotencyKey: $k}) { clientMutationId } }`, { r: id, k: `rel-${id}` }, owner.token),
  )).then((answers) => answers.forEach((a) => expect(a.body.errors).toBeUndefined()));

  // Each Stripe event: every delivery answered 200, stored once: at most one "new" answer per
  // event. (None when the server that stored it was the one killed before it could answer: its
  // delivery failed over, and the other server rightly called it a duplicate. The stored count
  // and the applied-once checks below hold either way.)
  expect(delivered.every((d) => d.status === 200)).toBe(true);
  for (const event of events) {
    expect(delivered.filter((d) => d.event === event.id && d.body.duplicate === false).length).toBeLessThanOrEqual(1);
  }
  const { rows: stored } = await root.query("select count(*)::int as n from app_private.stripe_events where id = any($1)", [events.map((e) => e.id)]);
  expect(stored[0].n).toBe(events.length);
  expect(new Set(joined.map((j) => j.sentVia === j.acceptedVia)).has(false)).toBe(true);

  // --- The queue drains through the surviving worker, including the dead worker's jobs.
  await waitFor("every Stripe event applied", async () => {
    const { rows } = await root.query("select count(*)::int as n from app_private.stripe_events where processed_at is not null");
    return rows[0].n === events.length;
  }, 90);
  await waitFor("the queue drained", async () => {
    const { rows } = await root.query("select count(*)::int as n from graphile_worker.jobs where run_at <= now() or locked_by is not null");
    return rows[0].n === 0;
  }, 60);
  const freed = logLines(survivor).filter((l) => l.msg?.startsWith("freed the jobs of worker pools"));
  if (heldRows[0].n > 0) expect(freed.length).toBeGreaterThan(0);

  // --- Invariants.
  // Ledger = balances, counters = recomputed (the nightly check's own functions).
  expect((await root.query("select * from app_private.credit_ledger_discrepancies()")).rows).toEqual([]);
  expect((await root.query("select * from app_private.usage_counter_discrepancies()")).rows).toEqual([]);
  // Each Stripe grant once, each event applied by exactly one committed run.
  const { rows: grants } = await root.query(
    "select count(*)::int as n, sum(amount)::int as credits from app_public.credit_ledger where organization_id = $1 and source = 'purchase'", [buying]);
  expect(grants[0]).toEqual({ n: events.length, credits: events.length * 500 });
  const { rows: runs } = await root.query("select id, attempts, outcome, last_error from app_private.stripe_events");
  expect(runs.filter((r) => r.outcome !== "applied" || r.last_error !== null)).toEqual([]);
  // Each applied with one effect (the grants above). An event may have taken more than one
  // attempt: those the killed worker held may have committed just before it died and run again,
  // and a run that failed on a transient error (seen once in CI, not reproduced) is retried; every
  // task is safe to run twice, and the grant count above is the proof of "once".
  const reruns = runs.filter((r) => r.attempts !== 1 && !heldEvents.has(r.id));
  if (reruns.length) console.log(`${reruns.length} event(s) not held by the killed worker took more than one attempt`);
  expect(runs.every((r) => r.attempts >= 1 && r.attempts <= 3)).toBe(true);
  // Racing organization: what was captured is spent, the rest is back.
  const { rows: racingAccount } = await root.query("select available::int, reserved::int from app_public.credit_accounts where organization_id = $1", [racing]);
  const captured = Math.ceil(reserved.length / 2) * amount;
  expect(racingAccount[0]).toEqual({ available: startingCredits - captured, reserved: 0 });
  // Every invitee is a member once; every invitation mailed at most once per token (one file per
  // token), and only if it was still pending when its job ran: send_invitation_email sends
  // nothing for an accepted invitation (a job the killed worker held runs again only after the
  // liveness sweep, and any job may run after the invitee accepted).
  const { rows: members } = await root.query("select count(*)::int as n from app_public.organization_members where organization_id = $1", [inviting]);
  expect(members[0].n).toBe(invitees.length + 1);
  const mails = readdirSync(outboxDir).filter((file) => file.startsWith("invitation-"));
  const jobLines = [...servers(), ...workers()].flatMap((proc) => logLines(proc)).map((l) => String(l.msg ?? ""));
  for (const j of joined) {
    const mailed = mails.filter((file) => file.startsWith(`invitation-${j.invitationId}-`)).length;
    const skipped = jobLines.some((msg) => msg.includes(`invitation ${j.invitationId} is no longer pending`));
    // Never twice for one token (a resend after a lost answer issues a second token)...
    expect(mailed).toBeLessThanOrEqual(j.resent ? 2 : 1);
    // ...and nothing lost: its mail job ran, and mailed it or found it accepted already (the test
    // accepts with the token from the API's answer, often before a busy worker mails it)
    expect(mailed >= 1 || skipped).toBe(true);
  }
  // No job left locked anywhere.
  const { rows: locked } = await root.query(
    "select (select count(*) from graphile_worker._private_jobs where locked_by is not null)::int as jobs, (select count(*) from graphile_worker._private_job_queues where locked_by is not null)::int as queues");
  expect(locked[0]).toEqual({ jobs: 0, queues: 0 });

  // The survivors still serve and stop cleanly.
  for (const proc of procs.filter((p) => !p.dead)) {
    proc.child.kill("SIGTERM");
    expect(await proc.exit).toBe(0);
  }
});
