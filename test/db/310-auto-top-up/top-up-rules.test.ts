// The admin's side of auto top-up (db/functions/310-auto-top-up/top-up-rules.sql): admins and
// owners set and turn off the one rule of their organization, read it and whether a card is saved;
// members cannot; another organization neither reads nor changes it; amounts are validated;
// turning it off cancels the attempt waiting for the worker, with its job.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { twoTenants } from "../../helpers/fixtures.ts";
import { codeOf, UNKNOWN } from "../../helpers/codes.ts";
import { autoTopUpHelpers, setUpAutoTopUp } from "../../helpers/auto-top-up.ts";

let db: TestDatabase;
let pack: string;
beforeAll(async () => {
  db = await createTestDatabase();
  pack = await setUpAutoTopUp(db);
});
afterAll(() => db?.drop());

const h = autoTopUpHelpers(() => db);

async function tenantsWithCards() {
  const { a, b } = await twoTenants(db);
  for (const t of [a, b]) {
    const customer = `cus_${t.org.id.replace(/-/g, "").slice(0, 14)}`;
    await db.owner.query("insert into app_private.stripe_customers (organization_id, stripe_customer_id) values ($1, $2)", [t.org.id, customer]);
    await db.owner.query(
      "insert into app_private.auto_top_up_payment_methods (organization_id, stripe_payment_method_id, stripe_setup_intent_id, stripe_customer_id, saved_at) values ($1, 'pm_x', 'seti_x', $2, now())",
      [t.org.id, customer],
    );
  }
  return { a, b };
}

test("admins and owners set the rule (one per organization) and read it; members and other organizations cannot", async () => {
  const { a, b } = await tenantsWithCards();
  const rule = await h.setRule(a.admin, a.org.id, pack, "200", 3, "5700");
  expect(rule).toMatchObject({ organization_id: a.org.id, enabled: true, credit_package_id: pack, threshold: "200", max_per_month: 3, monthly_limit_amount: "5700", currency: "usd", target_balance: null });
  // setting again changes the same row
  const again = await h.setRule(a.owner, a.org.id, pack, 100, 4, 3800, 2500);
  expect(again).toMatchObject({ threshold: "100", max_per_month: 4, target_balance: "2500" });
  const read = await db.queryAs(a.admin, "select threshold::int, app_public.auto_top_up_rules_payment_method_saved(r) as saved from app_public.auto_top_up_rules r");
  expect(read.rows).toEqual([{ threshold: 100, saved: true }]);

  expect(await codeOf(h.setRule(a.member, a.org.id, pack, 100))).toBe("FORBIDDEN");
  expect(await codeOf(h.disable(a.member, a.org.id))).toBe("FORBIDDEN");
  expect((await db.queryAs(a.member, "select * from app_public.auto_top_up_rules")).rows).toEqual([]);
  // the other organization: not disclosed, not changed
  expect(await codeOf(h.setRule(b.owner, a.org.id, pack, 0))).toBe("NOT_FOUND");
  expect(await codeOf(h.disable(b.owner, a.org.id))).toBe("NOT_FOUND");
  expect((await db.queryAs(b.owner, "select * from app_public.auto_top_up_rules")).rows).toEqual([]);
  expect(await codeOf(h.setRule({ userId: null }, a.org.id, pack, 0))).toMatch(/^42501|NOT_AUTHENTICATED/);
  // no direct write for app roles
  expect(await codeOf(db.queryAs(a.owner, "update app_public.auto_top_up_rules set max_per_month = 100"))).toMatch(/^42501/);
  expect(await codeOf(db.queryAs(a.owner, "delete from app_public.auto_top_up_rules"))).toMatch(/^42501/);
  expect(await codeOf(db.queryAs(a.owner, "select * from app_private.auto_top_up_payment_methods"))).toMatch(/^42501/);
  expect((await h.rule(a.org.id)).threshold).toBe("100");
});

test("amounts, counts and the package are validated, and nothing changes on a refusal", async () => {
  const { a } = await tenantsWithCards();
  await h.setRule(a.owner, a.org.id, pack, 100, 2, 3800);
  const bad: [unknown[], string][] = [
    [[-1, 2, 3800], "INVALID_AMOUNT"],
    [["1.5", 2, 3800], "INVALID_AMOUNT"],
    [["1000000000001", 2, 3800], "INVALID_AMOUNT"],
    [[100, 0, 3800], "INVALID_ARGUMENTS"],
    [[100, 101, 3800], "INVALID_ARGUMENTS"],
    [[100, 2, 0], "INVALID_AMOUNT"],
    [[100, 2, 1899], "INVALID_AMOUNT"], // less than one pack
    [[100, 2, "100000000001"], "INVALID_AMOUNT"],
    [[100, 2, 3800, 100], "INVALID_AMOUNT"], // target not above the threshold
  ];
  for (const [[threshold, max, limit, target], code] of bad) {
    expect(await codeOf(h.setRule(a.owner, a.org.id, pack, threshold, max, limit, target ?? null))).toBe(code);
  }
  expect(await codeOf(h.setRule(a.owner, a.org.id, UNKNOWN, 100))).toBe("NOT_FOUND");
  const { rows } = await db.owner.query("insert into app_public.credit_packages (name, credits, stripe_price_id) values ('Unpriced', 10, 'price_unpriced') returning id");
  expect(await codeOf(h.setRule(a.owner, a.org.id, rows[0].id, 100))).toBe("NOT_PURCHASABLE");
  expect(await h.rule(a.org.id)).toMatchObject({ threshold: "100", max_per_month: 2, monthly_limit_amount: "3800" });
});

test("without a saved card the rule cannot be turned on (NO_PAYMENT_METHOD)", async () => {
  const { a } = await twoTenants(db);
  expect(await codeOf(h.setRule(a.owner, a.org.id, pack, 100))).toBe("NO_PAYMENT_METHOD");
  expect(await h.rule(a.org.id)).toBeUndefined();
  expect(await codeOf(h.disable(a.owner, a.org.id))).toBe("NOT_FOUND");
});

test("turning it off cancels the attempt waiting for the worker and its job; it starts no more", async () => {
  const { a } = await tenantsWithCards();
  await h.setRule(a.owner, a.org.id, pack, 80);
  await h.spend(a.org.id, 30); // 100 → 70: at or below 80
  expect((await h.attempts(a.org.id)).map((x) => x.status)).toEqual(["pending"]);
  expect(await h.jobs("auto_top_up", a.org.id)).toHaveLength(1);
  const off = await h.disable(a.admin, a.org.id);
  expect(off.enabled).toBe(false);
  expect((await h.attempts(a.org.id)).map((x) => x.status)).toEqual(["canceled"]);
  expect(await h.jobs("auto_top_up", a.org.id)).toHaveLength(0);
  await h.spend(a.org.id, 10);
  expect(await h.attempts(a.org.id)).toHaveLength(1);
  // the worker, had it taken the job already, finds nothing to do
  const begun = await db.owner.query("select * from app_private.begin_auto_top_up_attempt($1)", [(await h.attempts(a.org.id))[0].id]);
  expect(begun.rows[0].status).toBe("canceled");
});
