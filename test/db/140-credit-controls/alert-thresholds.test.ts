// Usage alert thresholds, the admin's side (db/functions/140-credit-controls/alert-thresholds.sql):
// admins and owners set and remove them, members read them (FORBIDDEN to change), another
// organization sees and changes nothing (NOT_FOUND), amounts and percents are validated, and an
// organization has at most 20.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { twoTenants } from "../../helpers/fixtures.ts";
import { codeOf, UNKNOWN } from "../../helpers/codes.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

type Actor = { userId: string | null };
const setThreshold = (as: Actor, org: string, kind: string, balance: unknown, capId: string | null = null, percent: unknown = null) =>
  db.queryAs(as, "select * from app_public.set_credit_alert_threshold($1, $2, $3, $4, $5)", [org, kind, balance, capId, percent]).then((r) => r.rows[0]);
const removeThreshold = (as: Actor, id: string) =>
  db.queryAs(as, "select * from app_public.remove_credit_alert_threshold($1)", [id]).then((r) => r.rows[0]);
const thresholds = (as: Actor, org: string) =>
  db.queryAs(as,
    "select id, kind::text, balance_at_most::int, cap_id, percent from app_public.credit_alert_thresholds where organization_id = $1 order by id",
    [org]).then((r) => r.rows);
const capOf = async (as: Actor, org: string) =>
  (await db.queryAs(as, "select id from app_public.set_spend_cap($1, 'day', 1000)", [org])).rows[0].id as string;

test("admins and owners set and remove thresholds; members read them; other tenants see and change nothing", async () => {
  const { a, b } = await twoTenants(db);
  const cap = await capOf(a.owner, a.org.id);
  const low = await setThreshold(a.admin, a.org.id, "low_balance", "100");
  const used = await setThreshold(a.owner, a.org.id, "cap_used", null, cap, 80);
  expect(low).toMatchObject({ kind: "low_balance", balance_at_most: "100", cap_id: null, percent: null, armed: true });
  expect(used).toMatchObject({ kind: "cap_used", balance_at_most: null, cap_id: cap, percent: 80 });
  // the same again returns the same threshold
  expect((await setThreshold(a.owner, a.org.id, "low_balance", 100)).id).toBe(low.id);
  expect(await thresholds(a.member, a.org.id)).toEqual([
    { id: low.id, kind: "low_balance", balance_at_most: 100, cap_id: null, percent: null },
    { id: used.id, kind: "cap_used", balance_at_most: null, cap_id: cap, percent: 80 },
  ]);

  expect(await codeOf(setThreshold(a.member, a.org.id, "low_balance", 5))).toBe("FORBIDDEN");
  expect(await codeOf(removeThreshold(a.member, low.id))).toBe("FORBIDDEN");
  expect(await thresholds(b.owner, a.org.id)).toEqual([]);
  expect(await codeOf(setThreshold(b.owner, a.org.id, "low_balance", 5))).toBe("NOT_FOUND");
  expect(await codeOf(removeThreshold(b.owner, low.id))).toBe("NOT_FOUND");
  expect(await codeOf(removeThreshold(b.owner, UNKNOWN))).toBe("NOT_FOUND");
  // nor aim a threshold at a's cap from b
  expect(await codeOf(setThreshold(b.owner, b.org.id, "cap_used", null, cap, 50))).toBe("NOT_FOUND");
  // no direct writes
  expect(await codeOf(db.queryAs(a.owner, "update app_public.credit_alert_thresholds set armed = false"))).toMatch(/^42501/);
  expect(await codeOf(db.queryAs(a.owner, "delete from app_public.credit_alert_thresholds"))).toMatch(/^42501/);
  expect(await codeOf(db.queryAs(a.owner,
    "insert into app_public.credit_alert_thresholds (organization_id, kind, balance_at_most) values ($1, 'low_balance', 1)", [a.org.id]))).toMatch(/^42501/);

  expect((await removeThreshold(a.admin, low.id)).id).toBe(low.id);
  expect(await codeOf(removeThreshold(a.admin, low.id))).toBe("NOT_FOUND");
  // removing the cap removes its thresholds
  await db.queryAs(a.owner, "select app_public.remove_spend_cap($1)", [cap]);
  expect(await thresholds(a.owner, a.org.id)).toEqual([]);
});

test("amounts, percents and arguments are validated (INVALID_AMOUNT, INVALID_PERCENT, INVALID_ARGUMENTS) and change nothing", async () => {
  const { a } = await twoTenants(db);
  const cap = await capOf(a.owner, a.org.id);
  for (const bad of ["-1", "1.5", "1000000000001"]) {
    expect(await codeOf(setThreshold(a.owner, a.org.id, "low_balance", bad))).toBe("INVALID_AMOUNT");
  }
  for (const bad of [0, 101, -5]) {
    expect(await codeOf(setThreshold(a.owner, a.org.id, "cap_used", null, cap, bad))).toBe("INVALID_PERCENT");
  }
  expect(await codeOf(setThreshold(a.owner, a.org.id, "low_balance", null))).toBe("INVALID_ARGUMENTS");
  expect(await codeOf(setThreshold(a.owner, a.org.id, "low_balance", 5, cap))).toBe("INVALID_ARGUMENTS");
  expect(await codeOf(setThreshold(a.owner, a.org.id, "cap_used", 5, cap, 50))).toBe("INVALID_ARGUMENTS");
  expect(await codeOf(setThreshold(a.owner, a.org.id, "cap_used", null, null, 50))).toBe("INVALID_ARGUMENTS");
  expect(await codeOf(setThreshold(a.owner, a.org.id, "grant_expiring", null))).toBe("INVALID_ARGUMENTS");
  expect(await codeOf(setThreshold(a.owner, a.org.id, "cap_used", null, UNKNOWN, 50))).toBe("NOT_FOUND");
  expect(await thresholds(a.owner, a.org.id)).toEqual([]);
  // 0 credits ("ran out") and 100% are fine
  expect(await setThreshold(a.owner, a.org.id, "low_balance", 0)).toMatchObject({ balance_at_most: "0" });
  expect(await setThreshold(a.owner, a.org.id, "cap_used", null, cap, 100)).toMatchObject({ percent: 100 });
});

test("at most 20 per organization (CREDIT_ALERT_LIMIT_REACHED with the limit); an existing one can always be set again", async () => {
  const { a, b } = await twoTenants(db);
  for (let i = 1; i <= 20; i++) await setThreshold(a.owner, a.org.id, "low_balance", i * 10);
  await expect(setThreshold(a.owner, a.org.id, "low_balance", 5)).rejects.toMatchObject({ detail: "CREDIT_ALERT_LIMIT_REACHED" });
  const { rows } = await db.owner.query("select count(*)::int as n from app_public.credit_alert_thresholds where organization_id = $1", [a.org.id]);
  expect(rows[0].n).toBe(20);
  expect(await setThreshold(a.owner, a.org.id, "low_balance", 10)).toMatchObject({ balance_at_most: "10" });
  // another organization's count is its own
  expect(await setThreshold(b.owner, b.org.id, "low_balance", 5)).toMatchObject({ balance_at_most: "5" });
});
