// Usage periods (db/functions/100-plans/usage-periods.sql): calendar months in UTC whatever the
// session's time zone, and the rollover that closes a period, restarts the counters and grants
// the plan's allowance for the next one, once. Dates are pinned: the rollover is driven by
// putting a counter's period in the past, never by today's date.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createOrganization, createUser } from "../../helpers/fixtures.ts";
import { withSettings } from "../../../db/transaction.ts";
import { planHelpers } from "../../helpers/plans.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  await db.owner.query("insert into app_public.plans (id, name, max_seats, max_projects, monthly_credits) values ('test-zero', 'Zero', 3, 3, 0)");
});
afterAll(() => db?.drop());

const { counters } = planHelpers(() => db);
const ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Pacific/Kiritimati", "Pacific/Pago_Pago"];

/** Runs one query on an owner connection whose session time zone is `zone`. */
const inZone = (zone: string, sql: string, values: unknown[] = []) =>
  withSettings(db.owner, { TimeZone: zone }, (c) => c.query(sql, values)).then((r) => r.rows[0]);

test("a period is a calendar month in UTC: its start and end at the last moments of a month and a year, in any time zone", async () => {
  const cases: [string, string, string][] = [
    ["2026-11-30T23:59:59.999999Z", "2026-11-01T00:00:00.000Z", "2026-12-01T00:00:00.000Z"],
    ["2026-12-01T00:00:00Z", "2026-12-01T00:00:00.000Z", "2027-01-01T00:00:00.000Z"],
    ["2026-12-31T23:59:59.999999Z", "2026-12-01T00:00:00.000Z", "2027-01-01T00:00:00.000Z"],
    ["2027-01-01T00:00:00Z", "2027-01-01T00:00:00.000Z", "2027-02-01T00:00:00.000Z"],
    ["2027-02-28T23:59:59Z", "2027-02-01T00:00:00.000Z", "2027-03-01T00:00:00.000Z"],
    ["2027-03-01T00:00:00Z", "2027-03-01T00:00:00.000Z", "2027-04-01T00:00:00.000Z"], // DST starts within it in most zones
    ["2028-02-29T12:00:00Z", "2028-02-01T00:00:00.000Z", "2028-03-01T00:00:00.000Z"],
  ];
  for (const zone of ZONES) {
    for (const [at, start, end] of cases) {
      const row = await inZone(zone, "select app_hidden.usage_period_start($1) as start, app_hidden.usage_period_end($1) as end", [at]);
      expect([zone, at, row.start.toISOString(), row.end.toISOString()]).toEqual([zone, at, start, end]);
    }
  }
});

test("a new organization's counter covers the current UTC month, whatever the session's time zone", async () => {
  const owner = await createUser(db);
  for (const zone of ZONES) {
    const org = await withSettings(db.auth, { role: "app_user", "jwt.claims.user_id": owner.userId, TimeZone: zone }, (c) =>
      c.query("select id from app_public.create_organization($1)", [`Zone ${zone}`]),
    ).then((r) => r.rows[0].id);
    const { rows } = await db.owner.query(
      "select app_hidden.usage_period_start(now()) as start, app_hidden.usage_period_end(now()) as end");
    const c = await counters(org);
    expect([zone, c.period_start.toISOString(), c.period_end.toISOString()]).toEqual([zone, rows[0].start.toISOString(), rows[0].end.toISOString()]);
  }
});

/**
 * An organization whose counter holds a pinned, past period with some usage. Made (as the owner,
 * without members) on a plan without credits and moved to pro afterwards, so the only allowance
 * is the one a rollover grants.
 */
let made = 0;
async function pastPeriod(start: string, end: string) {
  const { rows } = await db.owner.query(
    "insert into app_public.organizations (slug, name, plan_id) values ($1, 'Past Period', 'test-zero') returning id", [`past-period-${++made}`]);
  const org = { id: rows[0].id as string };
  await db.owner.query("update app_public.organizations set plan_id = 'pro' where id = $1", [org.id]);
  await db.owner.query("select app_private.count_api_call($1)", [org.id]);
  await db.owner.query(
    "update app_public.usage_counters set period_start = $2, period_end = $3, generations = 4, credits_spent = 12 where organization_id = $1",
    [org.id, start, end],
  );
  return org.id;
}

test("rollover closes an ended period once: totals recorded, counters restarted, next period, the allowance granted once", async () => {
  const org = await pastPeriod("2025-12-01T00:00:00Z", "2026-01-01T00:00:00Z");
  const rolled = async () => (await db.owner.query("select app_private.rollover_usage_period($1) as r", [org])).rows[0].r;
  expect(await rolled()).toBe(true);
  expect(await rolled()).toBe(false);
  const periods = await db.owner.query(
    "select period_start, period_end, generations::int, credits_spent::int, api_calls::int from app_public.usage_periods where organization_id = $1", [org]);
  expect(periods.rows).toEqual([{
    period_start: new Date("2025-12-01T00:00:00Z"), period_end: new Date("2026-01-01T00:00:00Z"), generations: 4, credits_spent: 12, api_calls: 1,
  }]);
  // periods missed while nothing ran are skipped: the new one is the month containing now
  const { rows } = await db.owner.query("select app_hidden.usage_period_start(now()) as start, app_hidden.usage_period_end(now()) as end");
  const c = await counters(org);
  expect([c.period_start, c.period_end]).toEqual([rows[0].start, rows[0].end]);
  expect([Number(c.generations), Number(c.credits_spent), Number(c.api_calls)]).toEqual([0, 0, 0]);
  // the pro allowance for the new period, once
  const grants = await db.owner.query(
    "select amount::int, remaining::int, expires_at from app_public.credit_grants where organization_id = $1 and source = 'monthly_allowance' order by amount", [org]);
  expect(grants.rows).toEqual([{ amount: 5000, remaining: 5000, expires_at: rows[0].end }]);
  const audit = await db.owner.query("select details from app_public.audit_events where organization_id = $1 and action = 'usage.period_closed'", [org]);
  expect(audit.rows).toHaveLength(1);
  expect(audit.rows[0].details).toMatchObject({ generations: 4, credits_spent: 12, api_calls: 1 });
});

test("a period that has not ended is left alone", async () => {
  const owner = await createUser(db);
  const org = await createOrganization(db, owner, "Current Period");
  const before = await counters(org.id);
  expect((await db.owner.query("select app_private.rollover_usage_period($1) as r", [org.id])).rows[0].r).toBe(false);
  expect(await counters(org.id)).toEqual(before);
  expect((await db.owner.query("select count(*)::int as n from app_public.usage_periods where organization_id = $1", [org.id])).rows[0].n).toBe(0);
});

test("the next period starts where the last one ended and lasts one UTC month, in any session time zone", async () => {
  for (const zone of ZONES) {
    // a period that ended at the start of the current month: the next one is this month, exactly
    const { rows } = await db.owner.query(
      "select app_hidden.usage_period_start(now()) as start, app_hidden.usage_period_end(now()) as end, app_hidden.usage_period_start(app_hidden.usage_period_start(now()) - interval '1 day') as previous");
    const org = await pastPeriod(rows[0].previous.toISOString(), rows[0].start.toISOString());
    expect((await inZone(zone, "select app_private.rollover_usage_period($1) as r", [org])).r).toBe(true);
    const c = await counters(org);
    expect([zone, c.period_start.toISOString(), c.period_end.toISOString()]).toEqual([zone, rows[0].start.toISOString(), rows[0].end.toISOString()]);
  }
});

test("rollover_due_usage_periods rolls every ended period, at most max_orgs per call", async () => {
  await db.owner.query("select app_private.rollover_due_usage_periods(100000)"); // whatever earlier tests left
  const orgs = [];
  for (let i = 0; i < 3; i++) orgs.push(await pastPeriod("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"));
  expect((await db.owner.query("select app_private.rollover_due_usage_periods(2) as n")).rows[0].n).toBe(2);
  expect((await db.owner.query("select app_private.rollover_due_usage_periods(2) as n")).rows[0].n).toBe(1);
  expect((await db.owner.query("select app_private.rollover_due_usage_periods(2) as n")).rows[0].n).toBe(0);
  const { rows } = await db.owner.query("select count(*)::int as n from app_public.usage_periods where organization_id = any($1)", [orgs]);
  expect(rows[0].n).toBe(3);
  await expect(db.queryAs(await createUser(db), "select app_private.rollover_due_usage_periods()")).rejects.toMatchObject({ code: "42501" });
});
