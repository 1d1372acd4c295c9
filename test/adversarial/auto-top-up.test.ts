// Auto top-up charges a saved card without anyone present, so each way to make it charge more,
// charge the wrong organization, or credit the wrong one is an attack kept here (ATTACKS.md:
// money and identity, free value by cycling, shared namespaces, volume within every limit).

import pg from "pg";
import { actorSettings, createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { twoTenants } from "../helpers/fixtures.ts";
import { codeOf } from "../helpers/codes.ts";
import { stripeEvent, T0 } from "../helpers/stripe.ts";
import { autoTopUpCycle, autoTopUpHelpers, paymentIntentObject, setUpAutoTopUp } from "../helpers/auto-top-up.ts";
import { creditHelpers } from "../helpers/credits.ts";
import { withSettings } from "../../db/transaction.ts";

let db: TestDatabase;
let pack: string;
beforeAll(async () => {
  db = await createTestDatabase();
  pack = await setUpAutoTopUp(db);
});
afterAll(() => db?.drop());

const h = autoTopUpHelpers(() => db);
const { pay, age } = autoTopUpCycle(() => db);
const credits = creditHelpers(() => db);

async function withCards() {
  const { a, b } = await twoTenants(db);
  const cards = [];
  for (const t of [a, b]) {
    const customer = `cus_adv${t.org.id.replace(/-/g, "").slice(0, 12)}`;
    await db.owner.query("insert into app_private.stripe_customers (organization_id, stripe_customer_id) values ($1, $2)", [t.org.id, customer]);
    await db.owner.query(
      "insert into app_private.auto_top_up_payment_methods (organization_id, stripe_payment_method_id, stripe_setup_intent_id, stripe_customer_id, saved_at) values ($1, 'pm_adv', 'seti_adv', $2, now())",
      [t.org.id, customer],
    );
    cards.push(customer);
  }
  return { a: { ...a, customer: cards[0] }, b: { ...b, customer: cards[1] } };
}

test("a member cannot configure or turn off auto top-up, nor read the rule or the attempts", async () => {
  const { a } = await withCards();
  expect(await codeOf(h.setRule(a.member, a.org.id, pack, 1_000_000_000, 100, 100_000_000))).toBe("FORBIDDEN");
  await h.setRule(a.owner, a.org.id, pack, 50);
  expect(await codeOf(h.disable(a.member, a.org.id))).toBe("FORBIDDEN");
  expect(await codeOf(db.queryAs(a.member, "select * from app_hidden.auto_top_up_setup_target($1)", [a.org.id]))).toBe("FORBIDDEN");
  await h.spend(a.org.id, 60);
  expect((await db.queryAs(a.member, "select * from app_public.auto_top_up_rules")).rows).toEqual([]);
  expect((await db.queryAs(a.member, "select * from app_public.auto_top_up_attempts")).rows).toEqual([]);
  expect((await h.rule(a.org.id)).enabled).toBe(true);
});

test("another organization can neither read nor change the rule or the attempts", async () => {
  const { a, b } = await withCards();
  await h.setRule(a.owner, a.org.id, pack, 50);
  await h.spend(a.org.id, 60);
  for (const who of [b.owner, b.admin]) {
    expect(await codeOf(h.setRule(who, a.org.id, pack, 1_000_000, 100, 100_000_000))).toBe("NOT_FOUND");
    expect(await codeOf(h.disable(who, a.org.id))).toBe("NOT_FOUND");
    expect(await codeOf(db.queryAs(who, "select * from app_hidden.auto_top_up_setup_target($1)", [a.org.id]))).toBe("NOT_FOUND");
    expect((await db.queryAs(who, "select * from app_public.auto_top_up_rules where organization_id = $1", [a.org.id])).rows).toEqual([]);
    expect((await db.queryAs(who, "select * from app_public.auto_top_up_attempts where organization_id = $1", [a.org.id])).rows).toEqual([]);
    expect(await codeOf(db.queryAs(who, "update app_public.auto_top_up_attempts set status = 'canceled'"))).toMatch(/^42501/);
  }
  expect(await h.rule(a.org.id)).toMatchObject({ enabled: true, threshold: "50" });
  expect((await h.attempts(a.org.id)).map((x) => x.status)).toEqual(["pending"]);
});

test("50 concurrent crossing spends of every kind (reserves as members, debits as jobs) make one attempt", async () => {
  const { a } = await withCards();
  await db.owner.query("update app_public.organizations set plan_id = 'enterprise' where id = $1", [a.org.id]);
  await h.grant(a.org.id, 4900);
  await h.setRule(a.owner, a.org.id, pack, 4500);
  const users = new pg.Pool({ connectionString: db.authUrl, max: 20 });
  const jobs = new pg.Pool({ connectionString: db.ownerUrl, max: 5 });
  users.on("error", () => {});
  jobs.on("error", () => {});
  try {
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) =>
        i % 5 === 0
          ? jobs.query("select app_private.debit_credits($1, 30, 'manual', null)", [a.org.id])
          : withSettings(users, actorSettings(a.member), (c) => c.query("select app_public.reserve_credits($1, 30, $2, 900)", [a.org.id, `adv-${i}`])),
      ),
    );
    expect(results.filter((r) => r.status === "rejected")).toEqual([]);
  } finally {
    await users.end();
    await jobs.end();
  }
  expect(await h.attempts(a.org.id)).toHaveLength(1);
  expect(await h.jobs("auto_top_up", a.org.id)).toHaveLength(1);
});

test("cycling spend and refill, and turning the rule off and on, never passes maxPerMonth or the money ceiling", async () => {
  const { a } = await withCards();
  await h.setRule(a.owner, a.org.id, pack, 500, 3, 3 * 1900);
  for (let i = 0; i < 12; i++) {
    const { available } = await credits.account(a.org.id);
    await h.spend(a.org.id, Math.max(1, available - 10));
    const open = (await h.attempts(a.org.id)).filter((x) => x.status === "pending");
    if (open.length) await pay(open[0].id, a.customer);
    else await h.grant(a.org.id, 1000); // refilled another way: spending crosses again
    await age(a.org.id); // out of the burst window, same month
    if (i % 4 === 3) {
      // off and on again, with a higher count: what this month already charged still counts
      await h.disable(a.admin, a.org.id);
      await h.setRule(a.admin, a.org.id, pack, 500, 3, 3 * 1900);
    }
  }
  const attempts = (await h.attempts(a.org.id)).filter((x) => x.status !== "canceled");
  expect(attempts.length).toBe(3);
  expect(attempts.reduce((sum, x) => sum + x.amount, 0)).toBe(3 * 1900);
  const { rows } = await db.owner.query("select count(*)::int as n from app_public.credit_grants where organization_id = $1 and source = 'auto_top_up'", [a.org.id]);
  expect(rows[0].n).toBe(3);
  expect((await db.owner.query("select * from app_private.auto_top_up_discrepancies()")).rows).toEqual([]);
  await credits.expectConsistent();
});

test("turning the rule off and on between spends piles up no attempts: canceled ones count towards the burst limit", async () => {
  const { a } = await withCards();
  await h.setRule(a.owner, a.org.id, pack, 95);
  for (let i = 0; i < 10; i++) {
    await h.spend(a.org.id, 1);
    await h.disable(a.admin, a.org.id);
    await h.setRule(a.admin, a.org.id, pack, 95);
  }
  expect((await h.attempts(a.org.id)).map((x) => x.status)).toEqual(["canceled", "canceled", "canceled"]);
});

test("replayed and out-of-order payment_intent events grant once", async () => {
  const { a } = await withCards();
  await h.setRule(a.owner, a.org.id, pack, 50);
  await h.spend(a.org.id, 60);
  const [attempt] = await h.attempts(a.org.id);
  await db.owner.query("select * from app_private.begin_auto_top_up_attempt($1)", [attempt.id]);
  const before = (await credits.account(a.org.id)).available;
  const ok = paymentIntentObject({ id: "pi_adv_replay", customer: a.customer, amount: 1900, attemptId: attempt.id, organizationId: a.org.id });
  const events = [
    stripeEvent("payment_intent.succeeded", ok, T0 + 10),
    stripeEvent("payment_intent.payment_failed", { ...ok, status: "requires_payment_method", amount_received: 0, last_payment_error: { code: "card_declined", decline_code: "do_not_honor" } }, T0),
    stripeEvent("payment_intent.succeeded", ok, T0 + 11),
  ];
  for (const event of [events[0], events[2], events[1], events[0], events[2]]) await h.apply(event);
  expect((await credits.account(a.org.id)).available).toBe(before + 1000);
  expect((await h.attempts(a.org.id))[0]).toMatchObject({ status: "succeeded", decline_code: null });
});

test("a payment for org A's attempt with metadata naming org B, or paid by B's customer, credits nobody", async () => {
  const { a, b } = await withCards();
  await h.setRule(a.owner, a.org.id, pack, 50);
  await h.spend(a.org.id, 60);
  const [attempt] = await h.attempts(a.org.id);
  await db.owner.query("select * from app_private.begin_auto_top_up_attempt($1)", [attempt.id]);
  const beforeA = (await credits.account(a.org.id)).available;
  const beforeB = (await credits.account(b.org.id)).available;
  const namingB = paymentIntentObject({ id: "pi_adv_b1", customer: a.customer, amount: 1900, attemptId: attempt.id, organizationId: b.org.id });
  expect(await h.apply(stripeEvent("payment_intent.succeeded", namingB, T0))).toBe("ignored");
  const paidByB = paymentIntentObject({ id: "pi_adv_b2", customer: b.customer, amount: 1900, attemptId: attempt.id });
  expect(await h.apply(stripeEvent("payment_intent.succeeded", paidByB, T0))).toBe("ignored");
  expect((await credits.account(a.org.id)).available).toBe(beforeA);
  expect((await credits.account(b.org.id)).available).toBe(beforeB);
  const { rows } = await db.owner.query("select count(*)::int as n from app_public.credit_grants where source = 'auto_top_up' and organization_id = any($1)", [[a.org.id, b.org.id]]);
  expect(rows[0].n).toBe(0);
});
