// The one spending order (db/functions/110-credits/grant-order.sql): priority, then soonest
// expiry (never-expiring last), then promotional before refund before purchased, then oldest;
// reserve, capture and debit all take grants in it; every spend says which grants paid; the
// balance by category.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { creditHelpers } from "../../helpers/credits.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const { expectConsistent, emptyOrganization, reserve, capture } = creditHelpers(() => db);

type Category = "allowance" | "promotional" | "purchased" | "refund";

/** A grant of `amount` credits; expires: SQL expression or null (never); returns its id. */
async function grant(org: string, amount: number, category: Category, expires: string | null, priority: number | null = null) {
  const { rows } = await db.owner.query(
    `select grant_id from app_private.grant_credits_as($1, $2, $3, 'manual', ${expires ?? "null"}, null, $4)`,
    [org, amount, category, priority],
  );
  return rows[0].grant_id as string;
}

async function order(org: string): Promise<string[]> {
  const { rows } = await db.owner.query(
    `select t.grant_id from app_private.take_from_grants($1,
       (select available from app_public.credit_accounts where organization_id = $1)) with ordinality t (grant_id, take, n) order by n`,
    [org],
  );
  return rows.map((r) => r.grant_id);
}

/** The grants a ledger entry took credits from, as { grantId: amount }. */
async function paidBy(entryId: string): Promise<Record<string, number>> {
  const { rows } = await db.owner.query(
    "select grant_id, amount::int from app_public.credit_ledger_allocations where ledger_entry_id = $1",
    [entryId],
  );
  return Object.fromEntries(rows.map((r) => [r.grant_id, r.amount]));
}

/** The grants an open reservation holds credits of, as { grantId: amount }. */
async function heldBy(reservationId: string): Promise<Record<string, number>> {
  const { rows } = await db.owner.query(
    "select grant_id, amount::int from app_private.credit_reservation_allocations where reservation_id = $1",
    [reservationId],
  );
  return Object.fromEntries(rows.map((r) => [r.grant_id, r.amount]));
}

async function entryOf(reservationId: string, kind: string): Promise<string> {
  const { rows } = await db.owner.query("select id from app_public.credit_ledger where reservation_id = $1 and kind = $2", [reservationId, kind]);
  return rows[0].id;
}

test("each category has its default priority, and billing's sources map to categories", async () => {
  const { org } = await emptyOrganization();
  const ids = {
    allowance: await grant(org.id, 1, "allowance", null),
    promotional: await grant(org.id, 1, "promotional", null),
    refund: await grant(org.id, 1, "refund", null),
    purchased: await grant(org.id, 1, "purchased", null),
  };
  const { rows } = await db.owner.query("select id, category, priority from app_public.credit_grants where id = any($1)", [Object.values(ids)]);
  expect(Object.fromEntries(rows.map((r) => [r.category, r.priority]))).toEqual({ allowance: 10, promotional: 20, refund: 30, purchased: 40 });
  const sources = await db.owner.query(
    "select s, app_hidden.credit_category_for_source(s) as c from unnest(array['monthly_allowance', 'subscription', 'purchase', 'refund', 'manual', 'promo_launch']) s",
  );
  expect(Object.fromEntries(sources.rows.map((r) => [r.s, r.c]))).toEqual({
    monthly_allowance: "allowance", subscription: "allowance", purchase: "purchased", refund: "refund", manual: "promotional", promo_launch: "promotional",
  });
  // grant_credits (billing, jobs) derives the category from the source
  await db.owner.query("select app_private.grant_credits($1, 3, 'purchase', null, null)", [org.id]);
  const bought = await db.owner.query("select category, priority from app_public.credit_grants where organization_id = $1 and source = 'purchase'", [org.id]);
  expect(bought.rows).toEqual([{ category: "purchased", priority: 40 }]);
  // an organization's monthly allowance is an allowance
  const allowance = await db.owner.query("select distinct category from app_public.credit_grants where organization_id = $1 and source = 'monthly_allowance'", [org.id]);
  expect(allowance.rows).toEqual([{ category: "allowance" }]);
  // priority is 0-100
  await expect(grant(org.id, 1, "promotional", null, 101)).rejects.toThrow(/priority/);
  await expect(db.owner.query("update app_public.credit_grants set priority = -1 where id = $1", [ids.refund])).rejects.toThrow(/credit_grants_priority_check/);
});

test("tie-breaker 1: a lower priority is spent first, whatever it expires", async () => {
  const { org, owner } = await emptyOrganization();
  const soonHigh = await grant(org.id, 5, "allowance", "now() + interval '1 hour'", 50);
  const neverLow = await grant(org.id, 5, "purchased", null, 1);
  expect(await order(org.id)).toEqual([neverLow, soonHigh]);
  const r = await reserve(owner, org.id, 1, "p");
  expect(await heldBy(r.id)).toEqual({ [neverLow]: 1 });
});

test("tie-breaker 2: same priority, the soonest expiry first, never-expiring last", async () => {
  const { org, owner } = await emptyOrganization();
  const never = await grant(org.id, 5, "promotional", null, 20);
  const later = await grant(org.id, 5, "promotional", "now() + interval '10 days'", 20);
  const soon = await grant(org.id, 5, "promotional", "now() + interval '1 day'", 20);
  expect(await order(org.id)).toEqual([soon, later, never]);
  const r = await reserve(owner, org.id, 12, "e");
  expect(await heldBy(r.id)).toEqual({ [soon]: 5, [later]: 5, [never]: 2 });
});

test("tie-breaker 3: same priority and expiry, promotional before refund before purchased", async () => {
  const { org, owner } = await emptyOrganization();
  const expires = "timestamptz '2100-01-01 00:00:00Z'";
  const purchased = await grant(org.id, 5, "purchased", expires, 20);
  const refund = await grant(org.id, 5, "refund", expires, 20);
  const promotional = await grant(org.id, 5, "promotional", expires, 20);
  expect(await order(org.id)).toEqual([promotional, refund, purchased]);
  const r = await reserve(owner, org.id, 1, "c");
  expect(await heldBy(r.id)).toEqual({ [promotional]: 1 });
});

test("tie-breaker 4: all else equal, the oldest first", async () => {
  const { org, owner } = await emptyOrganization();
  const first = await grant(org.id, 5, "purchased", null);
  const second = await grant(org.id, 5, "purchased", null);
  const third = await grant(org.id, 5, "purchased", null);
  // made older than the others after the fact: age, not id, decides
  // (the audit-columns trigger keeps created_at: bypass triggers as the superuser)
  const root = await db.root.connect();
  try {
    await root.query("begin");
    await root.query("set local session_replication_role = replica");
    await root.query("update app_public.credit_grants set created_at = created_at - interval '1 day' where id = $1", [third]);
    await root.query("commit");
  } finally {
    root.release();
  }
  expect(await order(org.id)).toEqual([third, first, second]);
  const r = await reserve(owner, org.id, 6, "o");
  expect(await heldBy(r.id)).toEqual({ [third]: 5, [first]: 1 });
});

test("reserve, capture and debit take grants in the same order, and each entry says which grants paid", async () => {
  const { org, owner } = await emptyOrganization();
  const make = async (o: string) => ({
    a: await grant(o, 10, "purchased", null, 5),
    b: await grant(o, 10, "promotional", "now() + interval '3 days'", 30),
    c: await grant(o, 10, "allowance", "now() + interval '2 days'", 30),
  });
  const g = await make(org.id);
  const expected = [g.a, g.c, g.b];
  expect(await order(org.id)).toEqual(expected);

  // reserve 25: a 10, c 10, b 5
  const r = await reserve(owner, org.id, 25, "r");
  expect(await heldBy(r.id)).toEqual({ [g.a]: 10, [g.c]: 10, [g.b]: 5 });
  // capture 15 of it: spent from a then c, in the order; the rest goes back to c and b
  await capture(owner, r.id, 15);
  expect(await paidBy(await entryOf(r.id, "capture"))).toEqual({ [g.a]: 10, [g.c]: 5 });
  const remaining = async (ids: string[]) =>
    (await db.owner.query("select id, remaining::int from app_public.credit_grants where id = any($1)", [ids])).rows.reduce(
      (m: Record<string, number>, row) => ({ ...m, [row.id]: row.remaining }), {});
  expect(await remaining(Object.values(g))).toEqual({ [g.a]: 0, [g.c]: 5, [g.b]: 10 });

  // debit 15 on an organization with the same grants: a 10, c 5 (the same as the capture)
  const { org: other } = await emptyOrganization();
  const h = await make(other.id);
  const debit = await db.owner.query("select id from app_private.debit_credits($1, 15, 'refund_correction', null)", [other.id]);
  expect(await paidBy(debit.rows[0].id)).toEqual({ [h.a]: 10, [h.c]: 5 });
  expect(await remaining(Object.values(h))).toEqual({ [h.a]: 0, [h.c]: 5, [h.b]: 10 });
  await expectConsistent();
});

test("available credits by category: every category, summing to available", async () => {
  const { org, owner } = await emptyOrganization();
  await grant(org.id, 12000, "allowance", "now() + interval '20 days'");
  await grant(org.id, 5000, "purchased", null);
  await reserve(owner, org.id, 1000, "held"); // held credits are not available
  const { rows } = await db.queryAs(owner,
    "select a.available::int, app_public.credit_accounts_available_by_category(a) as by_category from app_public.credit_accounts a where organization_id = $1",
    [org.id]);
  expect(rows[0]).toEqual({ available: 16000, by_category: { allowance: 11000, promotional: 0, refund: 0, purchased: 5000 } });
});
