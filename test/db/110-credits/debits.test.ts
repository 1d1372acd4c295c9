// Debits (db/functions/110-credits/debits.sql): credits taken away (refund, chargeback, correction)
// come from the soonest-expiring grants first and from never-expiring ones last; idempotent on
// the key; never more than is available; never from an expired grant. Expiry times are relative
// to now and far apart, so the order does not depend on the date the tests run.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createUser } from "../../helpers/fixtures.ts";
import { codeOf, UNKNOWN } from "../../helpers/codes.ts";
import { creditHelpers } from "../../helpers/credits.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const { account, ledgerCount, expectConsistent, emptyOrganization } = creditHelpers(() => db);
const debit = (org: string, amount: unknown, key: string | null = null) =>
  db.owner.query("select * from app_private.debit_credits($1, $2, 'refund', $3)", [org, amount, key]).then((r) => r.rows[0]);

async function threeGrants(org: string) {
  const grant = async (expires: string | null, key: string) =>
    (await db.owner.query(`select grant_id from app_private.grant_credits($1, 10, 'manual', ${expires ?? "null"}, $2)`, [org, key])).rows[0].grant_id;
  return { never: await grant(null, "never"), later: await grant("now() + interval '10 days'", "later"), soon: await grant("now() + interval '1 day'", "soon") };
}
const remaining = async (org: string) =>
  Object.fromEntries((await db.owner.query("select id, remaining::int from app_public.credit_grants where organization_id = $1 and source = 'manual'", [org])).rows.map((r) => [r.id, r.remaining]));

test("the soonest-expiring grant pays first, the never-expiring one last; one 'adjust' entry", async () => {
  const { org } = await emptyOrganization();
  const g = await threeGrants(org.id);
  const entry = await debit(org.id, 15);
  expect(entry).toMatchObject({ kind: "adjust", source: "refund" });
  expect([Number(entry.amount), Number(entry.available_delta), Number(entry.available_after)]).toEqual([-15, -15, 15]);
  expect(await remaining(org.id)).toEqual({ [g.soon]: 0, [g.later]: 5, [g.never]: 10 });
  await debit(org.id, 10);
  expect(await remaining(org.id)).toEqual({ [g.soon]: 0, [g.later]: 0, [g.never]: 5 });
  expect(await account(org.id)).toEqual({ available: 5, reserved: 0 });
  await expectConsistent();
});

test("idempotent on its key: a repeat returns the first entry; another amount under it is refused", async () => {
  const { org } = await emptyOrganization();
  await threeGrants(org.id);
  const first = await debit(org.id, 4, "refund:ch_1");
  const n = await ledgerCount(org.id);
  expect((await debit(org.id, 4, "refund:ch_1")).id).toBe(first.id);
  expect(await ledgerCount(org.id)).toBe(n);
  expect(await codeOf(debit(org.id, 5, "refund:ch_1"))).toBe("IDEMPOTENCY_KEY_REUSED");
  expect(await account(org.id)).toEqual({ available: 26, reserved: 0 });
});

test("more than is available, a bad amount or an unknown organization: refused, nothing changes", async () => {
  const { org, owner } = await emptyOrganization();
  await threeGrants(org.id);
  await db.queryAs(owner, "select app_public.reserve_credits($1, 25, 'held')", [org.id]); // reserved credits are not available
  const n = await ledgerCount(org.id);
  expect(await codeOf(debit(org.id, 6))).toBe("INSUFFICIENT_CREDITS");
  for (const amount of [0, -1, 1_000_000_000_001, null]) expect(await codeOf(debit(org.id, amount))).toBe("INVALID_AMOUNT");
  expect(await codeOf(debit(UNKNOWN, 1))).toBe("NOT_FOUND");
  expect(await ledgerCount(org.id)).toBe(n);
  expect(await account(org.id)).toEqual({ available: 5, reserved: 25 });
  expect(Object.values(await remaining(org.id)).reduce((a: number, b) => a + Number(b), 0)).toBe(5);
  await expectConsistent();
});

test("an expired grant is expired first, never debited", async () => {
  const { org } = await emptyOrganization();
  const g = await threeGrants(org.id);
  await db.owner.query("update app_public.credit_grants set expires_at = now() - interval '1 second' where id = $1", [g.soon]);
  expect(await codeOf(debit(org.id, 21))).toBe("INSUFFICIENT_CREDITS");
  await debit(org.id, 20);
  const { rows } = await db.owner.query("select kind, amount::int from app_public.credit_ledger where grant_id = $1 order by seq", [g.soon]);
  expect(rows).toEqual([{ kind: "grant", amount: 10 }, { kind: "expire", amount: -10 }]);
  expect(await remaining(org.id)).toEqual({ [g.soon]: 0, [g.later]: 0, [g.never]: 0 });
  await expectConsistent();
});

test("app roles cannot call it", async () => {
  const { org } = await emptyOrganization();
  await expect(db.queryAs(await createUser(db), "select app_private.debit_credits($1, 1, 'manual', null)", [org.id])).rejects.toMatchObject({ code: "42501" });
});
