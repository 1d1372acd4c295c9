// The credit and usage jobs with the real graphile-worker and task list: reservation expiry at
// expires_at and the sweep behind it, grant expiry, usage period rollover, the nightly ledger
// check, each run twice; and their crontab lines.

import pg from "pg";
import { Logger, parseCrontab, runOnce } from "graphile-worker";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { createOrganization, createUser, type TestUser } from "../helpers/fixtures.ts";
import { taskList } from "../../workers/tasks/index.ts";
import { readCrontab } from "../../workers/runner.ts";

let db: TestDatabase;
let owner: TestUser;
let org: string;
// The worker's own pool, ended before the database is dropped: a pool runOnce made itself could
// still hold a connection (its batched job completion) when the drop terminated it, an unhandled
// error that failed whichever test was running.
let workerPool: pg.Pool;
beforeAll(async () => {
  db = await createTestDatabase();
  workerPool = new pg.Pool({ connectionString: db.ownerUrl, max: 4 });
  workerPool.on("error", () => {});
  owner = await createUser(db);
  org = (await createOrganization(db, owner, "Jobs Co")).id;
  // The allowance expires at the end of the calendar month, which may be minutes away (on the
  // last day of a month it expired before the promotions below and was spent after them): pinned
  // 30 days ahead, so the order in which grants are spent does not depend on today's date.
  await db.owner.query("update app_public.credit_grants set expires_at = now() + interval '30 days' where organization_id = $1 and source = 'monthly_allowance'", [org]);
});
afterAll(async () => {
  await workerPool?.end();
  await db?.drop();
});

const logs: { level: string; message: string }[] = [];
const logger = new Logger(() => (level, message) => {
  logs.push({ level, message });
});
/** Runs every job that is due now with the real worker and task list, then returns. */
const work = () => runOnce({ pgPool: workerPool, taskList, concurrency: 2, noHandleSignals: true, logger });
const queue = (task: string, payload: object = {}) => db.owner.query("select graphile_worker.add_job($1, $2::json)", [task, JSON.stringify(payload)]);

async function account() {
  const { rows } = await db.owner.query("select available::int, reserved::int from app_public.credit_accounts where organization_id = $1", [org]);
  return rows[0];
}
async function ledgerCount() {
  const { rows } = await db.owner.query("select count(*)::int as n from app_public.credit_ledger where organization_id = $1", [org]);
  return rows[0].n;
}
async function expectConsistent() {
  expect((await db.owner.query("select * from app_private.credit_ledger_discrepancies()")).rows).toEqual([]);
}
const reserve = async (amount: number, key: string) =>
  (await db.queryAs(owner, "select * from app_public.reserve_credits($1, $2, $3, 600)", [org, amount, key])).rows[0];
/** What the passing of time does: the reservation and its job become due now. */
async function makeDue(reservationId: string) {
  await db.owner.query("update app_public.credit_reservations set expires_at = now() where id = $1", [reservationId]);
  // the same job key: graphile-worker replaces the queued job, now due
  await db.owner.query(
    "select graphile_worker.add_job('expire_credit_reservation', json_build_object('organizationId', $1::uuid, 'reservationId', $2::uuid), run_at => now(), job_key => $3)",
    [org, reservationId, `credits:expire-reservation:${reservationId}`]);
}

test("each reservation's own job releases it at expires_at, once", async () => {
  const r = await reserve(10, "job-1");
  const { rows } = await db.owner.query("select run_at from graphile_worker.jobs where key = $1", [`credits:expire-reservation:${r.id}`]);
  expect(rows[0].run_at.getTime()).toBe(r.expires_at.getTime());
  await work(); // not due yet: nothing happens
  expect(await account()).toEqual({ available: 90, reserved: 10 });
  await makeDue(r.id);
  await work();
  expect(await account()).toEqual({ available: 100, reserved: 0 });
  const n = await ledgerCount();
  await queue("expire_credit_reservation", { organizationId: org, reservationId: r.id }); // run twice
  await work();
  expect(await ledgerCount()).toBe(n);
  const status = await db.owner.query("select status from app_public.credit_reservations where id = $1", [r.id]);
  expect(status.rows[0].status).toBe("expired");
  await expectConsistent();
});

test("a settled reservation's job does nothing", async () => {
  const r = await reserve(5, "job-2");
  await db.queryAs(owner, "select app_public.capture_credits($1, 5)", [r.id]);
  await makeDue(r.id);
  const n = await ledgerCount();
  await work();
  expect(await ledgerCount()).toBe(n);
  expect(await account()).toEqual({ available: 95, reserved: 0 });
});

test("the sweep releases overdue reservations whose own job was lost", async () => {
  const r1 = await reserve(3, "job-3");
  const r2 = await reserve(4, "job-4");
  for (const r of [r1, r2]) await db.owner.query("select graphile_worker.remove_job($1)", [`credits:expire-reservation:${r.id}`]);
  await db.owner.query("update app_public.credit_reservations set expires_at = now() where id = any($1)", [[r1.id, r2.id]]);
  await queue("expire_credit_reservation");
  await queue("expire_credit_reservation");
  await work();
  expect(await account()).toEqual({ available: 95, reserved: 0 });
  await expectConsistent();
});

test("grant expiry removes what is left of expired grants, once", async () => {
  // priority 5: spent before the allowance (priority 10; grant-order.sql)
  await db.owner.query("select app_private.grant_credits_as($1, 40, 'promotional', 'promotion', now() + interval '1 day', 'promo-1', 5)", [org]);
  const r = await reserve(100, "job-5"); // 40 promo (first in the spending order) + 60 allowance
  await db.queryAs(owner, "select app_public.capture_credits($1, 50)", [r.id]); // 40 promo + 10 allowance spent
  await db.owner.query("select app_private.grant_credits($1, 7, 'promotion', now() + interval '1 day', 'promo-2')", [org]);
  await db.owner.query("update app_public.credit_grants set expires_at = now() where organization_id = $1 and source = 'promotion'", [org]);
  await queue("expire_credit_grants");
  await work();
  expect(await account()).toEqual({ available: 85, reserved: 0 }); // 95 + 40 - 50 + 7 - 7
  const n = await ledgerCount();
  await queue("expire_credit_grants");
  await work();
  expect(await ledgerCount()).toBe(n);
  const expired = await db.owner.query("select amount::int from app_public.credit_ledger where organization_id = $1 and kind = 'expire'", [org]);
  expect(expired.rows).toEqual([{ amount: -7 }]);
  await expectConsistent();
});

test("usage period rollover closes the period, restarts the counters and grants the new allowance, once", async () => {
  // An organization made last month on a plan without credits, on pro since: this month's pro
  // allowance is what the rollover must grant.
  await db.owner.query("insert into app_public.plans (id, name, max_seats, max_projects, monthly_credits) values ('test-zero', 'Zero', 3, 3, 0)");
  const { rows: made } = await db.owner.query("insert into app_public.organizations (slug, name, plan_id) values ('rollover-co', 'Rollover Co', 'test-zero') returning id");
  const id = made[0].id;
  await db.owner.query("select app_private.grant_credits($1, 30, 'purchase', null, 'buy-1')", [id]);
  await db.owner.query("select app_private.count_api_call($1)", [id]);
  await db.owner.query("select app_private.count_api_call($1)", [id]);
  await db.owner.query(
    // the month before the current one, computed at this moment (not from when the row was made)
    `update app_public.usage_counters set period_start = app_hidden.usage_period_start(app_hidden.usage_period_start(now()) - interval '1 day'),
       period_end = app_hidden.usage_period_start(now()), generations = 4, credits_spent = 12
     where organization_id = $1`, [id]);
  await db.owner.query("update app_public.organizations set plan_id = 'pro' where id = $1", [id]);
  const before = (await db.owner.query("select * from app_public.usage_counters where organization_id = $1", [id])).rows[0];

  await queue("rollover_usage_periods");
  await queue("rollover_usage_periods");
  await work();
  await queue("rollover_usage_periods");
  await work();

  const periods = await db.owner.query("select period_start, period_end, generations::int, credits_spent::int, api_calls::int from app_public.usage_periods where organization_id = $1", [id]);
  expect(periods.rows).toEqual([{ period_start: before.period_start, period_end: before.period_end, generations: 4, credits_spent: 12, api_calls: 2 }]);
  const after = (await db.owner.query("select * from app_public.usage_counters where organization_id = $1", [id])).rows[0];
  expect(after.period_start.getTime()).toBe(before.period_end.getTime());
  expect(after.period_end > new Date()).toBe(true);
  expect([Number(after.generations), Number(after.credits_spent), Number(after.api_calls)]).toEqual([0, 0, 0]);
  const grants = await db.owner.query(
    "select source, amount::int, expires_at from app_public.credit_grants where organization_id = $1 order by created_at", [id]);
  expect(grants.rows).toEqual([
    { source: "purchase", amount: 30, expires_at: null },
    { source: "monthly_allowance", amount: 5000, expires_at: after.period_end },
  ]);
  const balance = await db.owner.query("select available::int from app_public.credit_accounts where organization_id = $1", [id]);
  expect(balance.rows[0].available).toBe(5030);
  await expectConsistent();
});

test("an organization whose plan is paid through Stripe gets no allowance from the rollover (its invoices grant it)", async () => {
  const { rows: made } = await db.owner.query("insert into app_public.organizations (slug, name, plan_id) values ('billed-co', 'Billed Co', 'test-zero') returning id");
  const id = made[0].id;
  await db.owner.query(
    `insert into app_public.subscriptions (organization_id, stripe_customer_id, stripe_subscription_id, status, plan_id,
       stripe_created_at, last_event_created_at, last_event_rank, last_event_id)
     values ($1, 'cus_1', 'sub_1', 'active', 'pro', now(), now(), 0, 'evt_1')`, [id]);
  await db.owner.query(
    `update app_public.usage_counters set period_start = app_hidden.usage_period_start(app_hidden.usage_period_start(now()) - interval '1 day'),
       period_end = app_hidden.usage_period_start(now()) where organization_id = $1`, [id]);
  await queue("rollover_usage_periods");
  await work();
  const counter = await db.owner.query("select period_end > now() as rolled from app_public.usage_counters where organization_id = $1", [id]);
  expect(counter.rows[0].rolled).toBe(true);
  const grants = await db.owner.query("select count(*)::int as n from app_public.credit_grants where organization_id = $1", [id]);
  expect(grants.rows[0].n).toBe(0);
});

test("the nightly ledger check logs an error naming each organization whose balance, spend cap window or auto top-ups differ", async () => {
  logs.length = 0;
  await queue("verify_credit_ledger");
  await work();
  expect(logs.filter((l) => l.level === "error" && l.message.includes("verify_credit_ledger"))).toEqual([]);
  expect(logs.some((l) => l.message.includes("all balances and counters agree"))).toBe(true);
  const check = await db.owner.query("select ok, details from app_private.operations_checks where name = 'credit_ledger'");
  expect(check.rows).toEqual([{ ok: true, details: { creditDiscrepancies: 0, counterDiscrepancies: 0, generationDiscrepancies: 0, spendCapDiscrepancies: 0, autoTopUpDiscrepancies: 0 } }]);

  // break it behind the ledger's back (the owner can write accounts; only the ledger is append-only)
  await db.owner.query("update app_public.credit_accounts set available = available + 5 where organization_id = $1", [org]);
  await db.owner.query("update app_public.usage_counters set project_count = project_count + 2 where organization_id = $1", [org]);
  logs.length = 0;
  await queue("verify_credit_ledger");
  await work();
  const errors = logs.filter((l) => l.level === "error" && l.message.startsWith("verify_credit_ledger:")).map((l) => l.message);
  expect(errors).toHaveLength(2);
  expect(errors[0]).toContain(`organization ${org} credit account differs from its ledger: available 90 (ledger 85, grants 85)`);
  expect(errors[1]).toContain(`organization ${org} usage counter project_count is 2, recomputed 0`);
  await db.owner.query("update app_public.credit_accounts set available = available - 5 where organization_id = $1", [org]);
  await db.owner.query("update app_public.usage_counters set project_count = project_count - 2 where organization_id = $1", [org]);

  // a spend cap counting what nothing charged, and a third top-up in a month under a rule of two
  const { rows: owners } = await db.owner.query("select user_id from app_public.organization_members where organization_id = $1 and role = 'owner'", [org]);
  await db.queryAs({ userId: owners[0].user_id }, "select app_public.set_spend_cap($1, 'month', 1000)", [org]);
  await db.owner.query("update app_public.credit_spend_caps set window_start = date_trunc('month', now()), window_spent = 3 where organization_id = $1", [org]);
  const { rows: packs } = await db.owner.query("insert into app_public.credit_packages (name, credits, stripe_price_id, unit_amount, currency) values ('Nightly pack', 10, 'price_nightly', 100, 'usd') returning id");
  for (let i = 0; i < 3; i++) {
    await db.owner.query(
      `insert into app_public.auto_top_up_attempts (organization_id, status, credit_package_id, quantity, credits, amount, currency, balance_before, rule_max_per_month, rule_monthly_limit_amount)
       values ($1, 'succeeded', $2, 1, 10, 100, 'usd', 0, 2, 10000)`, [org, packs[0].id]);
  }
  logs.length = 0;
  await queue("verify_credit_ledger");
  await work();
  const more = logs.filter((l) => l.level === "error" && l.message.startsWith("verify_credit_ledger:")).map((l) => l.message);
  expect(more).toHaveLength(2);
  expect(more[0]).toMatch(new RegExp(`organization ${org} spend cap .* \\(organization\\) counts 3 spent .* open charges are 0 and its captures 0`));
  expect(more[1]).toMatch(new RegExp(`organization ${org} auto top-up attempt .* is number 3 of its month \\(rule: 2\\)`));
  const failed = await db.owner.query("select ok, details from app_private.operations_checks where name = 'credit_ledger'");
  expect(failed.rows[0]).toMatchObject({ ok: false, details: { spendCapDiscrepancies: 1, autoTopUpDiscrepancies: 1 } });
  await db.owner.query("delete from app_public.credit_spend_caps where organization_id = $1", [org]);
  await db.owner.query("delete from app_public.auto_top_up_attempts where organization_id = $1", [org]);
});

test("the crontab schedules every credit job, and every scheduled task exists", () => {
  const items = parseCrontab(readCrontab());
  const tasks = items.map((item) => item.task);
  for (const task of ["expire_credit_reservation", "expire_credit_grants", "rollover_usage_periods", "verify_credit_ledger"]) {
    expect(tasks).toContain(task);
  }
  for (const task of tasks) expect(Object.keys(taskList)).toContain(task);
});
