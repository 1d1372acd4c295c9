// Usage alerts are a new tenant-chosen list and a new source of email (issue 21, section 3):
// a member (or a member-role API key) cannot set thresholds; another organization cannot read
// or change them or see the alerts; admins racing past the bound get exactly 20; spends that
// oscillate around a threshold, or an admin cycling thresholds, cannot farm alerts (and so
// emails) beyond the documented bounds; an admin removed after an alert gets no email.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { twoTenants } from "../helpers/fixtures.ts";
import { codeOf } from "../helpers/codes.ts";
import { createApiKey, queryAsApiKey, setPlan } from "../helpers/team.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

/** Away from midnight UTC, where the alert days turn. */
beforeEach(async () => {
  const { rows } = await db.owner.query(
    "select extract(epoch from app_hidden.spend_cap_window_end('day', app_hidden.spend_cap_window_start('day', now())) - clock_timestamp()) as left");
  const left = Number(rows[0].left);
  if (left < 60) await new Promise((resolve) => setTimeout(resolve, (left + 1) * 1000));
}, 75000);

const alertCount = (org: string) =>
  db.owner.query("select count(*)::int as n from app_public.credit_alerts where organization_id = $1", [org]).then((r) => r.rows[0].n as number);
const emailJobs = (org: string) =>
  db.owner.query(
    `select count(*)::int as n from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id
     where t.identifier = 'send_credit_alert_email' and j.payload->>'organizationId' = $1`, [org]).then((r) => r.rows[0].n as number);

test("members and member keys cannot set thresholds; another organization cannot read, set, remove or see alerts", async () => {
  const { a, b } = await twoTenants(db);
  const low = (await db.queryAs(a.admin, "select id from app_public.set_credit_alert_threshold($1, 'low_balance', 10)", [a.org.id])).rows[0].id;
  expect(await codeOf(db.queryAs(a.member, "select app_public.set_credit_alert_threshold($1, 'low_balance', 999999)", [a.org.id]))).toBe("FORBIDDEN");
  const key = await createApiKey(db, a.owner, a.org.id, "member key", "member");
  expect(await codeOf(queryAsApiKey(db, key.id, "select app_public.set_credit_alert_threshold($1, 'low_balance', 999999)", [a.org.id]))).toBe("FORBIDDEN");
  expect(await codeOf(queryAsApiKey(db, key.id, "select app_public.remove_credit_alert_threshold($1)", [low]))).toBe("FORBIDDEN");
  for (const user of [b.owner, b.admin, b.member]) {
    expect(await codeOf(db.queryAs(user, "select app_public.set_credit_alert_threshold($1, 'low_balance', 5)", [a.org.id]))).toBe("NOT_FOUND");
    expect(await codeOf(db.queryAs(user, "select app_public.remove_credit_alert_threshold($1)", [low]))).toBe("NOT_FOUND");
    expect((await db.queryAs(user, "select id from app_public.credit_alert_thresholds where organization_id = $1", [a.org.id])).rows).toEqual([]);
  }
  await db.owner.query("select app_private.record_credit_alert($1, 'low_balance', balance_at_most => 10, available => 3)", [a.org.id]);
  expect((await db.queryAs(b.owner, "select id from app_public.credit_alerts where organization_id = $1", [a.org.id])).rows).toEqual([]);
  expect((await db.queryAs(a.member, "select id from app_public.credit_alerts where organization_id = $1", [a.org.id])).rows).toHaveLength(1);
  // a's thresholds still there and unchanged
  expect((await db.owner.query("select balance_at_most::int from app_public.credit_alert_thresholds where organization_id = $1", [a.org.id])).rows)
    .toEqual([{ balance_at_most: 10 }]);
});

test("30 racing threshold creations: exactly 20 exist, the rest CREDIT_ALERT_LIMIT_REACHED", async () => {
  const { a } = await twoTenants(db);
  const outcomes = await Promise.all(Array.from({ length: 30 }, (_, i) =>
    codeOf(db.queryAs(a.owner, "select id from app_public.set_credit_alert_threshold($1, 'low_balance', $2)", [a.org.id, (i + 1) * 10]))));
  expect(outcomes.filter((code) => code === null)).toHaveLength(20);
  expect(outcomes.filter((code) => code === "CREDIT_ALERT_LIMIT_REACHED")).toHaveLength(10);
  expect((await db.owner.query("select count(*)::int as n from app_public.credit_alert_thresholds where organization_id = $1", [a.org.id])).rows[0].n).toBe(20);
});

test("a member reserving and releasing 40 times across a threshold fires one alert and one email job", async () => {
  const { a } = await twoTenants(db);
  await setPlan(db, a.org.id, "enterprise");
  await db.owner.query("select app_private.grant_credits($1, 1000, 'purchase', null, null)", [a.org.id]);
  const { rows } = await db.owner.query("select available::int from app_public.credit_accounts where organization_id = $1", [a.org.id]);
  await db.queryAs(a.owner, "select app_public.set_credit_alert_threshold($1, 'low_balance', $2)", [a.org.id, rows[0].available - 100]);
  const cap = (await db.queryAs(a.owner, "select id from app_public.set_spend_cap($1, 'day', 400)", [a.org.id])).rows[0].id;
  await db.queryAs(a.owner, "select app_public.set_credit_alert_threshold($1, 'cap_used', null, $2, 50)", [a.org.id, cap]);
  for (let i = 0; i < 40; i++) {
    const r = await db.queryAs(a.member, "select id from app_public.reserve_credits($1, 200, $2)", [a.org.id, `farm-${i}`]);
    await db.queryAs(a.member, "select app_public.release_credits($1)", [r.rows[0].id]);
  }
  // one low-balance alert (re-armed by each release, but once a day) and one cap alert (once a period)
  expect(await alertCount(a.org.id)).toBe(2);
  expect(await emailJobs(a.org.id)).toBe(2);
});

test("an admin cycling thresholds (each new one starts armed) stops at 50 alerts a day for the organization", async () => {
  const { a } = await twoTenants(db);
  await setPlan(db, a.org.id, "enterprise");
  await db.owner.query("select app_private.grant_credits($1, 100000, 'purchase', null, null)", [a.org.id]);
  const { rows } = await db.owner.query("select available::int from app_public.credit_accounts where organization_id = $1", [a.org.id]);
  const level = rows[0].available - 10;
  const held = (await db.queryAs(a.member, "select id from app_public.reserve_credits($1, 20, 'below')", [a.org.id])).rows[0].id;
  for (let i = 0; i < 60; i++) {
    // above, a new armed threshold, then below again
    await db.queryAs(a.member, "select app_public.release_credits($1)", [i === 0 ? held : (await db.owner.query(
      "select id from app_public.credit_reservations where organization_id = $1 and status = 'open' order by created_at desc limit 1", [a.org.id])).rows[0].id]);
    const t = (await db.queryAs(a.admin, "select id from app_public.set_credit_alert_threshold($1, 'low_balance', $2)", [a.org.id, level])).rows[0].id;
    await db.queryAs(a.member, "select app_public.reserve_credits($1, 20, $2)", [a.org.id, `cycle-${i}`]);
    await db.queryAs(a.admin, "select app_public.remove_credit_alert_threshold($1)", [t]);
  }
  expect(await alertCount(a.org.id)).toBe(50);
  expect(await emailJobs(a.org.id)).toBe(50);
  // a grant's expiry notice is not counted against it (it is once per grant anyway)
  const grant = (await db.owner.query(
    "select grant_id from app_private.grant_credits_as($1, 5, 'promotional', 'promo', now() + interval '2 days', null)", [a.org.id])).rows[0].grant_id;
  expect((await db.owner.query("select app_private.notice_expiring_credit_grants_of($1, 7) as n", [a.org.id])).rows[0].n).toBeGreaterThanOrEqual(1);
  expect((await db.owner.query("select count(*)::int as n from app_public.credit_alerts where grant_id = $1", [grant])).rows[0].n).toBe(1);
});

test("an admin removed after an alert fired gets no email", async () => {
  const { a } = await twoTenants(db);
  const { rows } = await db.owner.query("select app_private.record_credit_alert($1, 'low_balance', balance_at_most => 10, available => 3) as id", [a.org.id]);
  await db.queryAs(a.owner, "select app_public.remove_member($1, $2)", [a.org.id, a.admin.userId]);
  expect((await db.owner.query("select * from app_private.credit_alert_email($1, $2, $3)", [a.org.id, rows[0].id, a.admin.userId])).rows).toEqual([]);
  expect((await db.owner.query("select app_private.queue_credit_alert_emails($1, $2) as n", [a.org.id, rows[0].id])).rows[0].n).toBe(1); // the owner only
});
