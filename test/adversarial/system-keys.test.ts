// Attacks on the key namespaces and batch jobs that all organizations share (issue "No tenant
// can hurt another", findings 1 and 2), kept as regression tests:
// - a member reserves with the key the system will use for next period's allowance (or for a
//   paid checkout), so the system operation would fail for good;
// - the period rollover handles every organization in one batch, so one organization's failure
//   stopped it for all;
// - startGeneration adopted a reservation a client had made and released under
//   'generation:<its key>', leaving a running generation holding nothing.

import { Logger, runOnce } from "graphile-worker";
import type { Runner } from "graphile-worker";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { addMember, createOrganization, createUser, type TestUser } from "../helpers/fixtures.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { checkoutSessionObject, deliver, stripeConfigFor, stripeEvent } from "../helpers/stripe.ts";
import { taskList } from "../../workers/tasks/index.ts";
import { startWorker } from "../../workers/runner.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const logs: { level: string; message: string }[] = [];
const logger = new Logger(() => (level, message) => {
  logs.push({ level, message });
});
const work = () => runOnce({ connectionString: db.ownerUrl, taskList, concurrency: 1, noHandleSignals: true, logger });
const queue = (task: string) => db.owner.query("select graphile_worker.add_job($1, '{}'::json)", [task]);

async function account(organizationId: string) {
  const { rows } = await db.owner.query(
    "select available::int, reserved::int from app_public.credit_accounts where organization_id = $1",
    [organizationId],
  );
  return rows[0];
}

/** The key grant_monthly_allowance uses for the period that begins at `periodStart`. */
async function allowanceKey(periodStartSql: string): Promise<string> {
  const { rows } = await db.owner.query(
    `select 'allowance:' || to_char((${periodStartSql}) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') as key`,
  );
  return rows[0].key;
}

/** Seconds from now to the end of the current calendar month (UTC), as the database sees it. */
async function secondsToMonthEnd(): Promise<number> {
  const { rows } = await db.owner.query(
    "select extract(epoch from app_hidden.usage_period_end(now()) - now())::float as s",
  );
  return rows[0].s;
}

/** Moves the organizations' usage period back so that it ended at the start of this month. */
async function endPeriodsNow(organizationIds: string[]): Promise<void> {
  await db.owner.query(
    `update app_public.usage_counters
        set period_start = app_hidden.usage_period_start(app_hidden.usage_period_start(now()) - interval '1 day'),
            period_end = app_hidden.usage_period_start(now())
      where organization_id = any($1)`,
    [organizationIds],
  );
}

test("a member who takes the next period's allowance key cannot stop the rollover for anyone (three organizations, the attacker's in the middle)", async () => {
  // At a real month end (CI runs this file with the clock at the last minute of a month and of a
  // year) the attack is the real one: the key of next month's allowance, taken before midnight,
  // and the rollover after it. At any other time the same collision is staged within this month:
  // the organizations are created without this month's allowance (the free plan grants nothing
  // for a moment), the attacker takes this month's key, and their period is moved back so that
  // it ends at the start of this month.
  const atBoundary = (await secondsToMonthEnd()) <= 150;
  if (!atBoundary) await db.owner.query("update app_public.plans set monthly_credits = 0 where id = 'free'");
  const users: TestUser[] = [];
  const orgs: string[] = [];
  try {
    for (const name of ["Alpha", "Mallory", "Charlie"]) {
      const owner = await createUser(db, `${name} Owner`);
      users.push(owner);
      orgs.push((await createOrganization(db, owner, name)).id);
    }
  } finally {
    if (!atBoundary) await db.owner.query("update app_public.plans set monthly_credits = 100 where id = 'free'");
  }
  // Something to reserve with, whichever way the organizations were created.
  for (const organizationId of orgs) await db.owner.query("select app_private.grant_credits($1, 10, 'manual', null, null)", [organizationId]);
  const [, attackerOrg] = orgs;
  const attacker = await createUser(db, "Mallory Member");
  await addMember(db, attackerOrg, attacker, "member");

  // (UTC months whatever the session's TimeZone: `+ interval '1 month'` would count them in it)
  const next = atBoundary ? "app_hidden.usage_period_end(now())" : "app_hidden.usage_period_start(now())";
  const key = await allowanceKey(next);
  const before = await Promise.all(orgs.map(account));

  // The attack: reserve under the system's key and release, leaving the key taken.
  const reservation = (await db.queryAs(attacker, "select * from app_public.reserve_credits($1, 1, $2, 600)", [attackerOrg, key])).rows[0];
  await db.queryAs(attacker, "select app_public.release_credits($1)", [reservation.id]);

  if (atBoundary) {
    // Midnight passes: wait for the periods to end by the database's clock.
    for (;;) {
      const { rows } = await db.owner.query("select bool_and(period_end <= now()) as due from app_public.usage_counters where organization_id = any($1)", [orgs]);
      if (rows[0].due) break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  } else {
    await endPeriodsNow(orgs);
  }

  logs.length = 0;
  await queue("rollover_usage_periods");
  await work();

  for (const [i, organizationId] of orgs.entries()) {
    const { rows: counters } = await db.owner.query(
      "select period_end > now() as rolled from app_public.usage_counters where organization_id = $1",
      [organizationId],
    );
    expect(counters[0].rolled).toBe(true);
    const { rows: grants } = await db.owner.query(
      "select amount::int, idempotency_key, system_key from app_public.credit_ledger where organization_id = $1 and kind = 'grant' and system_key = $2",
      [organizationId, key],
    );
    expect(grants).toEqual([{ amount: 100, idempotency_key: null, system_key: key }]);
    // Everyone has the new period's credits.
    expect((await account(organizationId)).available).toBe(before[i].available + 100);
  }
  // The attacker's own entry is still there, under the client's column.
  const { rows: own } = await db.owner.query(
    "select kind from app_public.credit_ledger where organization_id = $1 and idempotency_key = $2",
    [attackerOrg, key],
  );
  expect(own).toEqual([{ kind: "reserve" }]);
  expect(logs.filter((l) => l.level === "error")).toEqual([]);
  expect((await db.owner.query("select * from app_private.credit_ledger_discrepancies()")).rows).toEqual([]);
}, 180_000);

test("one organization failing in a batch job is logged and counted, and the others are handled; the next run retries it", async () => {
  const owner = await createUser(db, "Batch Owner");
  const good1 = (await createOrganization(db, owner, "Batch Good One")).id;
  const bad = (await createOrganization(db, owner, "Batch Broken")).id;
  const good2 = (await createOrganization(db, owner, "Batch Good Two")).id;
  await endPeriodsNow([good1, bad, good2]);
  // A fault in one organization only: closing its period fails.
  await db.root.query(`
    create function public.fail_one_rollover() returns trigger language plpgsql as $$
    begin
      if new.organization_id = '${bad}' then raise exception 'disk full (injected)'; end if;
      return new;
    end $$`);
  await db.root.query(
    "create trigger _001_fail_one before insert on app_public.usage_periods for each row execute function public.fail_one_rollover()",
  );
  const before = await db.owner.query(
    "select coalesce(sum(count), 0)::int as n from app_private.job_counters where task_identifier = 'rollover_usage_periods' and outcome = 'organization_failed'",
  );
  try {
    logs.length = 0;
    await queue("rollover_usage_periods");
    await work();
    const rolled = async (id: string) =>
      (await db.owner.query("select period_end > now() as rolled from app_public.usage_counters where organization_id = $1", [id])).rows[0].rolled;
    expect(await rolled(good1)).toBe(true);
    expect(await rolled(good2)).toBe(true);
    expect(await rolled(bad)).toBe(false);
    const errors = logs.filter((l) => l.level === "error").map((l) => l.message);
    expect(errors).toEqual([expect.stringContaining(`rollover_usage_periods: organization ${bad} failed (P0001: disk full (injected))`)]);
    // The job itself completed: the others were handled.
    expect(logs.some((l) => l.message.includes("rollover_usage_periods") && l.level === "error" && /job.*failed/i.test(l.message))).toBe(false);
    const after = await db.owner.query(
      "select coalesce(sum(count), 0)::int as n from app_private.job_counters where task_identifier = 'rollover_usage_periods' and outcome = 'organization_failed'",
    );
    expect(after.rows[0].n - before.rows[0].n).toBe(1);
  } finally {
    await db.root.query("drop trigger _001_fail_one on app_public.usage_periods");
    await db.root.query("drop function public.fail_one_rollover()");
  }
  // Fixed: the next run rolls it over.
  await queue("rollover_usage_periods");
  await work();
  const { rows } = await db.owner.query("select period_end > now() as rolled from app_public.usage_counters where organization_id = $1", [bad]);
  expect(rows[0].rolled).toBe(true);
});

test("startGeneration never adopts a reservation a client made under 'generation:<key>'", async () => {
  const owner = await createUser(db, "Gen Owner");
  const org = (await createOrganization(db, owner, "Gen Co")).id;
  const project = (await db.queryAs(owner, "insert into app_public.projects (organization_id, name) values ($1, 'P') returning id", [org])).rows[0].id;
  const planted = (await db.queryAs(owner, "select * from app_public.reserve_credits($1, 5, 'generation:K1', 600)", [org])).rows[0];
  await db.queryAs(owner, "select app_public.release_credits($1)", [planted.id]);

  const generation = (
    await db.queryAs(owner, "select * from app_public.start_generation($1, $2, 'image', 'm', null, 5, 'K1')", [org, project])
  ).rows[0];
  expect(generation.status).toBe("running");
  expect(generation.reservation_id).not.toBe(planted.id);
  const { rows } = await db.owner.query(
    "select status::text, system_key, idempotency_key from app_public.credit_reservations where organization_id = $1 and id = $2",
    [org, generation.reservation_id],
  );
  expect(rows[0]).toEqual({ status: "open", system_key: `generation:${generation.id}`, idempotency_key: null });
  expect(await account(org)).toEqual({ available: 95, reserved: 5 });
  // It completes normally.
  const done = (await db.queryAs(owner, "select * from app_public.complete_generation($1, 3, null)", [generation.id])).rows[0];
  expect(done.status).toBe("succeeded");
  expect(await account(org)).toEqual({ available: 97, reserved: 0 });
  expect((await db.owner.query("select * from app_private.generation_reservation_discrepancies()")).rows).toEqual([]);
});

test("the nightly check names a running generation whose reservation is settled", async () => {
  const owner = await createUser(db, "Stranded Owner");
  const org = (await createOrganization(db, owner, "Stranded Co")).id;
  const project = (await db.queryAs(owner, "insert into app_public.projects (organization_id, name) values ($1, 'P') returning id", [org])).rows[0].id;
  const generation = (
    await db.queryAs(owner, "select * from app_public.start_generation($1, $2, 'image', 'm', null, 2, 'S1')", [org, project])
  ).rows[0];
  // What the old bug left behind: the generation runs, its reservation is settled.
  await db.owner.query("select app_private.settle_reservation($1, $2, null, 'released', null)", [org, generation.reservation_id]);
  const { rows } = await db.owner.query("select organization_id, generation_id, reservation_status from app_private.generation_reservation_discrepancies()");
  expect(rows).toEqual([{ organization_id: org, generation_id: generation.id, reservation_status: "released" }]);
  logs.length = 0;
  await queue("verify_credit_ledger");
  await work();
  expect(logs.filter((l) => l.level === "error").map((l) => l.message)).toEqual([
    expect.stringContaining(`generation ${generation.id} is running but its reservation ${generation.reservation_id} is released`),
  ]);
  // Leave the database consistent for the other tests of this file.
  await db.queryAs(owner, "select app_public.fail_generation($1, 'cleanup')", [generation.id]).catch(() => {});
  await db.owner.query("delete from app_public.generations where organization_id = $1 and id = $2", [org, generation.id]).catch(() => {});
});

describe("a paid checkout whose session id a member took first as a key", () => {
  let server: TestServer;
  let worker: Runner | null = null;
  beforeAll(async () => {
    server = await startTestServer(db, { stripe: stripeConfigFor(null) });
  });
  afterAll(async () => {
    await worker?.stop();
    await server?.close();
  });

  test("is credited once all the same", async () => {
    const owner = await createUser(db, "Buyer");
    const org = (await createOrganization(db, owner, "Buyer Co")).id;
    const { rows: pkg } = await db.owner.query(
      "insert into app_public.credit_packages (name, credits, stripe_price_id) values ('250 credits', 250, 'price_pack_250') returning id",
    );
    const sessionId = "cs_test_taken_key";
    const planted = (
      await db.queryAs(owner, "select * from app_public.reserve_credits($1, 1, $2, 600)", [org, `stripe:checkout_session:${sessionId}`])
    ).rows[0];
    await db.queryAs(owner, "select app_public.release_credits($1)", [planted.id]);
    const before = await account(org);

    const event = stripeEvent(
      "checkout.session.completed",
      checkoutSessionObject({ id: sessionId, customer: "cus_taken", organizationId: org, creditPackageId: pkg[0].id }),
      1_790_000_000,
    );
    expect((await deliver(server.url, event)).status).toBe(200);
    worker = await startWorker({ ownerUrl: db.ownerUrl, crontab: null, pollInterval: 100, concurrency: 2 });
    const deadline = Date.now() + 30_000;
    for (;;) {
      const { rows } = await db.owner.query("select outcome, last_error from app_private.stripe_events where id = $1", [event.id]);
      if (rows[0]?.outcome) {
        expect(rows[0]).toEqual({ outcome: "applied", last_error: null });
        break;
      }
      if (Date.now() > deadline) throw new Error(`event not processed: ${JSON.stringify(rows[0])}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect((await account(org)).available - before.available).toBe(250);
    const { rows } = await db.owner.query(
      "select system_key from app_public.credit_ledger where organization_id = $1 and kind = 'grant' and source = 'purchase'",
      [org],
    );
    expect(rows).toEqual([{ system_key: `stripe:checkout_session:${sessionId}` }]);
  });
});
