// Grants about to expire (db/functions/140-credit-controls/grant-expiry-notices.sql): one notice
// per grant expiring within the given days with credits left, never a second one, none for a
// grant used up or expiring later than the window.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { twoTenants } from "../../helpers/fixtures.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const grant = (org: string, amount: number, expiresIn: string | null) =>
  db.owner.query(
    "select grant_id from app_private.grant_credits_as($1, $2, 'promotional', 'promo', now() + $3::interval, null)",
    [org, amount, expiresIn]).then((r) => r.rows[0].grant_id as string);
const notices = (org: string) =>
  db.owner.query(
    "select grant_id, grant_remaining::int, grant_expires_at is not null as dated from app_public.credit_alerts where organization_id = $1 and kind = 'grant_expiring' order by grant_id",
    [org]).then((r) => r.rows);
let spends = 0;
const spendAll = (org: string) =>
  db.owner.query(
    `select app_private.debit_credits($1, a.available, 'spend', $2)
     from app_public.credit_accounts a where a.organization_id = $1 and a.available > 0`, [org, `spend-all-${++spends}`]);
const run = (days = 7) => db.owner.query("select app_private.notice_expiring_credit_grants($1) as n", [days]).then((r) => r.rows[0].n as number);

test("one notice per grant within the window with credits left; never twice; the window is a parameter", async () => {
  const { a, b } = await twoTenants(db);
  // whatever the organizations were given at creation (their plan's allowance) is spent: only
  // this test's grants have credits left
  for (const org of [a.org.id, b.org.id]) await spendAll(org);
  const soon = await grant(a.org.id, 100, "3 days");
  const later = await grant(a.org.id, 100, "20 days");
  await grant(a.org.id, 100, null as unknown as string); // never expires
  const spent = await grant(b.org.id, 50, "2 days");
  await spendAll(b.org.id); // the 2-day grant with it
  const bSoon = await grant(b.org.id, 70, "6 days");
  const { rows: left } = await db.owner.query("select remaining::int from app_public.credit_grants where id = $1", [spent]);
  expect(left[0].remaining).toBe(0);

  expect(await run()).toBe(2);
  expect(await notices(a.org.id)).toEqual([{ grant_id: soon, grant_remaining: 100, dated: true }]);
  expect(await notices(b.org.id)).toEqual([{ grant_id: bSoon, grant_remaining: 70, dated: true }]);
  expect(await run()).toBe(0);
  // a wider window reaches the 20-day grant, once
  expect(await run(30)).toBe(1);
  expect((await notices(a.org.id)).map((n) => n.grant_id).sort()).toEqual([soon, later].sort());
  expect(await run(30)).toBe(0);
  await expect(run(0)).rejects.toThrow(/within_days/);
});
