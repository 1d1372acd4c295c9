// When usage alerts fire (db/functions/140-credit-controls/alert-firing.sql): in the transaction
// that crossed the threshold (a rollback fires nothing), once per crossing (disarmed until the
// balance is above it again), at most once per UTC day per low-balance threshold, and once per
// cap period per cap threshold. Each fired alert is a credit_alerts row and one email job with
// the key credit_alert:<id>.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { twoTenants, type TestUser } from "../../helpers/fixtures.ts";
import { setPlan } from "../../helpers/team.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

/** Away from midnight UTC, where the alert days and the caps' periods turn. */
beforeEach(async () => {
  const { rows } = await db.owner.query(
    "select extract(epoch from app_hidden.spend_cap_window_end('day', app_hidden.spend_cap_window_start('day', now())) - clock_timestamp()) as left");
  const left = Number(rows[0].left);
  if (left < 30) await new Promise((resolve) => setTimeout(resolve, (left + 1) * 1000));
}, 45000);

let keys = 0;
const reserve = (as: TestUser, org: string, amount: number) =>
  db.queryAs(as, "select id from app_public.reserve_credits($1, $2, $3)", [org, amount, `k-${++keys}`]).then((r) => r.rows[0].id as string);
const release = (as: TestUser, id: string) => db.queryAs(as, "select app_public.release_credits($1)", [id]);
const alerts = (org: string) =>
  db.owner.query(
    `select kind::text, threshold_id, balance_at_most::int, available::int, cap_id, percent, cap_spent::int, cap_limit::int, cap_period::text
     from app_public.credit_alerts where organization_id = $1 order by fired_at, id`, [org]).then((r) => r.rows);
const jobsFor = (org: string) =>
  db.owner.query(
    `select j.key, j.payload->>'alertId' as alert_id
     from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id
     where t.identifier = 'send_credit_alert_email' and j.payload->>'organizationId' = $1 order by j.id`, [org]).then((r) => r.rows);

async function organization() {
  const { a } = await twoTenants(db);
  await setPlan(db, a.org.id, "enterprise");
  await db.owner.query("select app_private.grant_credits($1, 1000, 'purchase', null, null)", [a.org.id]);
  // exactly 1,000 available: whatever else the organization was given is held by a reservation
  const { rows } = await db.owner.query("select available::int - 1000 as extra from app_public.credit_accounts where organization_id = $1", [a.org.id]);
  if (rows[0].extra > 0) await reserve(a.owner, a.org.id, rows[0].extra);
  return a;
}

test("low balance: fires in the crossing transaction, once, with the balance; the job's key names the alert", async () => {
  const a = await organization();
  const threshold = (await db.queryAs(a.owner, "select id from app_public.set_credit_alert_threshold($1, 'low_balance', 300)", [a.org.id])).rows[0].id;
  await reserve(a.member, a.org.id, 500); // 500 left
  expect(await alerts(a.org.id)).toEqual([]);
  await reserve(a.member, a.org.id, 300); // 200 left: crossed
  await reserve(a.member, a.org.id, 50); // still below: no second alert
  expect(await alerts(a.org.id)).toEqual([
    { kind: "low_balance", threshold_id: threshold, balance_at_most: 300, available: 200, cap_id: null, percent: null, cap_spent: null, cap_limit: null, cap_period: null },
  ]);
  const { rows } = await db.owner.query("select id from app_public.credit_alerts where organization_id = $1", [a.org.id]);
  expect(await jobsFor(a.org.id)).toEqual([{ key: `credit_alert:${rows[0].id}`, alert_id: rows[0].id }]);
  const state = await db.owner.query("select armed, last_fired_at is not null as fired from app_public.credit_alert_thresholds where id = $1", [threshold]);
  expect(state.rows[0]).toEqual({ armed: false, fired: true });
});

test("a crossing that rolls back fires nothing: no alert, no job, the threshold still armed", async () => {
  const a = await organization();
  await db.queryAs(a.owner, "select app_public.set_credit_alert_threshold($1, 'low_balance', 300)", [a.org.id]);
  await db.owner.query("begin");
  try {
    await db.owner.query("select app_private.reserve_credits($1, 800, 'rolled-back', 900)", [a.org.id]);
    expect((await db.owner.query("select count(*)::int as n from app_public.credit_alerts where organization_id = $1", [a.org.id])).rows[0].n).toBe(1);
  } finally {
    await db.owner.query("rollback");
  }
  expect(await alerts(a.org.id)).toEqual([]);
  expect(await jobsFor(a.org.id)).toEqual([]);
  const { rows } = await db.owner.query("select armed from app_public.credit_alert_thresholds where organization_id = $1", [a.org.id]);
  expect(rows).toEqual([{ armed: true }]);
});

test("re-armed when the balance rises above; a second crossing on the same UTC day is skipped; on a later day it fires", async () => {
  const a = await organization();
  const threshold = (await db.queryAs(a.owner, "select id from app_public.set_credit_alert_threshold($1, 'low_balance', 300)", [a.org.id])).rows[0].id;
  const held = await reserve(a.member, a.org.id, 800); // 200: fires
  await release(a.member, held); // 1000: re-armed
  expect((await db.owner.query("select armed from app_public.credit_alert_thresholds where id = $1", [threshold])).rows[0].armed).toBe(true);
  const again = await reserve(a.member, a.org.id, 800); // 200 again, same day: skipped
  expect(await alerts(a.org.id)).toHaveLength(1);
  await release(a.member, again);
  // as if the first alert had been yesterday
  await db.owner.query("update app_public.credit_alert_thresholds set last_fired_at = last_fired_at - interval '1 day' where id = $1", [threshold]);
  await reserve(a.member, a.org.id, 750); // 250: fires
  expect((await alerts(a.org.id)).map((x) => x.available)).toEqual([200, 250]);
  // thresholds at different levels fire independently; a grant back above re-arms them all
  await db.queryAs(a.owner, "select app_public.set_credit_alert_threshold($1, 'low_balance', 100)", [a.org.id]);
  await reserve(a.member, a.org.id, 200); // 50: the 100 threshold fires (the 300 one is disarmed)
  expect((await alerts(a.org.id)).map((x) => [x.balance_at_most, x.available])).toEqual([[300, 200], [300, 250], [100, 50]]);
  await db.owner.query("select app_private.grant_credits($1, 1000, 'purchase', null, null)", [a.org.id]);
  const { rows } = await db.owner.query("select bool_and(armed) as armed from app_public.credit_alert_thresholds where organization_id = $1", [a.org.id]);
  expect(rows[0].armed).toBe(true);
});

test("cap used: each percent fires once per cap period, with the cap's spent and limit; releases do not re-fire it", async () => {
  const a = await organization();
  const cap = (await db.queryAs(a.owner, "select id from app_public.set_spend_cap($1, 'day', 1000)", [a.org.id])).rows[0].id;
  await db.owner.query("select app_private.grant_credits($1, 10000, 'purchase', null, null)", [a.org.id]);
  const half = (await db.queryAs(a.owner, "select id from app_public.set_credit_alert_threshold($1, 'cap_used', null, $2, 50)", [a.org.id, cap])).rows[0].id;
  const most = (await db.queryAs(a.owner, "select id from app_public.set_credit_alert_threshold($1, 'cap_used', null, $2, 80)", [a.org.id, cap])).rows[0].id;
  await reserve(a.member, a.org.id, 400);
  expect(await alerts(a.org.id)).toEqual([]);
  const r = await reserve(a.member, a.org.id, 100); // 500 of 1000: 50%
  await release(a.member, r); // back to 400
  await reserve(a.member, a.org.id, 100); // 50% again, same day: no second alert
  await reserve(a.member, a.org.id, 400); // 900: 80%
  expect(await alerts(a.org.id)).toEqual([
    { kind: "cap_used", threshold_id: half, balance_at_most: null, available: null, cap_id: cap, percent: 50, cap_spent: 500, cap_limit: 1000, cap_period: "day" },
    { kind: "cap_used", threshold_id: most, balance_at_most: null, available: null, cap_id: cap, percent: 80, cap_spent: 900, cap_limit: 1000, cap_period: "day" },
  ]);
  // the next period: as if the counter were yesterday's, the first charge past 50% fires again
  await db.owner.query("update app_public.credit_spend_caps set window_start = window_start - interval '1 day' where id = $1", [cap]);
  await db.owner.query("update app_public.credit_alert_thresholds set fired_window = fired_window - interval '1 day' where cap_id = $1", [cap]);
  await reserve(a.member, a.org.id, 600);
  expect((await alerts(a.org.id)).map((x) => [x.percent, x.cap_spent])).toEqual([[50, 500], [80, 900], [50, 600]]);
  expect(await jobsFor(a.org.id)).toHaveLength(3);
});

test("an organization without thresholds records nothing; another organization's spending never fires a's thresholds", async () => {
  const { a, b } = await twoTenants(db);
  for (const org of [a.org.id, b.org.id]) await db.owner.query("select app_private.grant_credits($1, 1000, 'purchase', null, null)", [org]);
  await db.queryAs(a.owner, "select app_public.set_credit_alert_threshold($1, 'low_balance', 500)", [a.org.id]);
  await reserve(b.member, b.org.id, 900);
  expect(await alerts(a.org.id)).toEqual([]);
  expect(await alerts(b.org.id)).toEqual([]);
  // and b cannot read a's alerts once they exist
  await reserve(a.member, a.org.id, 900);
  expect(await alerts(a.org.id)).toHaveLength(1);
  expect((await db.queryAs(b.owner, "select id from app_public.credit_alerts")).rows).toEqual([]);
  expect((await db.queryAs(a.member, "select kind::text from app_public.credit_alerts")).rows).toEqual([{ kind: "low_balance" }]);
});
