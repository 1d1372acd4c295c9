// Stripe's word on auto top-up (db/functions/310-auto-top-up/top-up-payments.sql), through the
// event intake: a saved card (the later one wins, whatever the order; another customer's or
// another organization's is ignored), payment_intent.succeeded granting the attempt's credits
// once (category purchased), in any order and any number of deliveries, and only to the
// attempt's own organization; payment_intent.payment_failed recording the decline.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { stripeEvent, T0 } from "../../helpers/stripe.ts";
import { autoTopUpHelpers, paymentIntentObject, setupIntentObject, setUpAutoTopUp } from "../../helpers/auto-top-up.ts";
import { creditHelpers } from "../../helpers/credits.ts";

let db: TestDatabase;
let pack: string;
beforeAll(async () => {
  db = await createTestDatabase();
  pack = await setUpAutoTopUp(db);
});
afterAll(() => db?.drop());

const h = autoTopUpHelpers(() => db);
const credits = creditHelpers(() => db);

async function savedCard(org: string) {
  const { rows } = await db.owner.query("select stripe_payment_method_id as pm from app_private.auto_top_up_payment_methods where organization_id = $1", [org]);
  return rows[0]?.pm ?? null;
}

async function pendingAttempt() {
  const made = await h.orgWithCard();
  await h.setRule(made.owner, made.org.id, pack, 90);
  await h.spend(made.org.id, 20);
  const [attempt] = await h.attempts(made.org.id);
  await db.owner.query("select * from app_private.begin_auto_top_up_attempt($1)", [attempt.id]);
  return { ...made, attempt };
}

describe("setup_intent.succeeded", () => {
  test("saves the card of the customer's organization; the later of two wins in any order; a new card lifts a back-off", async () => {
    const { org, customer } = await h.orgWithCard({ card: false });
    const older = stripeEvent("setup_intent.succeeded", setupIntentObject({ id: "seti_old1", customer, paymentMethod: "pm_old" }), T0 + 10);
    const newer = stripeEvent("setup_intent.succeeded", setupIntentObject({ id: "seti_new1", customer, paymentMethod: "pm_new", organizationId: org.id }), T0 + 20);
    expect(await h.apply(newer)).toBe("applied");
    expect(await h.apply(older)).toBe("stale");
    expect(await h.apply(newer)).toBe("stale"); // processed again: nothing changes
    expect(await savedCard(org.id)).toBe("pm_new");
  });

  test("a newly saved card lifts a decline back-off and an authentication pause", async () => {
    const { org, owner, customer } = await h.orgWithCard();
    await h.setRule(owner, org.id, pack, 90);
    await db.owner.query(
      "update app_public.auto_top_up_rules set retry_after = now() + interval '1 hour', paused_at = now(), paused_reason = 'authentication_required' where organization_id = $1",
      [org.id],
    );
    const event = stripeEvent("setup_intent.succeeded", setupIntentObject({ id: "seti_lift1", customer, paymentMethod: "pm_lift" }), T0 + 100);
    expect(await h.apply(event)).toBe("applied");
    expect(await h.rule(org.id)).toMatchObject({ retry_after: null, paused_at: null, paused_reason: null });
  });

  test("a customer we do not know, or metadata naming another organization, saves nothing", async () => {
    const a = await h.orgWithCard({ card: false });
    const b = await h.orgWithCard({ card: false });
    expect(await h.apply(stripeEvent("setup_intent.succeeded", setupIntentObject({ id: "seti_u1", customer: "cus_unknown1", paymentMethod: "pm_x", organizationId: a.org.id }), T0))).toBe("ignored");
    expect(await h.apply(stripeEvent("setup_intent.succeeded", setupIntentObject({ id: "seti_u2", customer: a.customer, paymentMethod: "pm_x", organizationId: b.org.id }), T0))).toBe("ignored");
    expect(await savedCard(a.org.id)).toBeNull();
    expect(await savedCard(b.org.id)).toBeNull();
  });
});

describe("a pack bought with setup_future_usage", () => {
  test("its payment_intent.succeeded saves the card of the customer's organization (no credits: Checkout grants those)", async () => {
    const { org, customer } = await h.orgWithCard({ card: false });
    const other = await h.orgWithCard({ card: false });
    const before = (await credits.account(org.id)).available;
    const paid = { ...paymentIntentObject({ id: "pi_pack_card1", customer, amount: 1900, organizationId: org.id }), setup_future_usage: "off_session", payment_method: "pm_from_pack" };
    expect(await h.apply(stripeEvent("payment_intent.succeeded", paid, T0))).toBe("applied");
    expect(await savedCard(org.id)).toBe("pm_from_pack");
    expect((await credits.account(org.id)).available).toBe(before);
    // without setup_future_usage, or naming another organization: nothing saved
    const plain = paymentIntentObject({ id: "pi_pack_plain1", customer: other.customer, amount: 1900 });
    expect(await h.apply(stripeEvent("payment_intent.succeeded", plain, T0))).toBe("ignored");
    const naming = { ...paymentIntentObject({ id: "pi_pack_card2", customer: other.customer, amount: 1900, organizationId: org.id }), setup_future_usage: "off_session" };
    expect(await h.apply(stripeEvent("payment_intent.succeeded", naming, T0 + 5))).toBe("ignored");
    expect(await savedCard(other.org.id)).toBeNull();
    expect(await savedCard(org.id)).toBe("pm_from_pack");
  });
});

describe("payment_intent.succeeded", () => {
  test("grants the attempt's credits once, category purchased, source auto_top_up, however often and in whatever order it comes", async () => {
    const { org, customer, attempt } = await pendingAttempt();
    const before = (await credits.account(org.id)).available;
    const intent = paymentIntentObject({ id: "pi_ok1", customer, amount: 1900, attemptId: attempt.id, organizationId: org.id });
    const succeeded = stripeEvent("payment_intent.succeeded", intent, T0 + 5);
    const failed = stripeEvent("payment_intent.payment_failed", { ...intent, status: "requires_payment_method", amount_received: 0, last_payment_error: { code: "card_declined", decline_code: "generic_decline" } }, T0 + 1);
    expect(await h.apply(succeeded)).toBe("applied");
    expect(await h.apply(succeeded)).toBe("stale");
    expect(await h.apply(stripeEvent("payment_intent.succeeded", intent, T0 + 6))).toBe("stale"); // another delivery, another event id
    expect(await h.apply(failed)).toBe("stale"); // an older failure arriving late changes nothing
    expect((await credits.account(org.id)).available).toBe(before + 1000);
    const { rows } = await db.owner.query("select category::text, source, amount::int from app_public.credit_grants where organization_id = $1 and source = 'auto_top_up'", [org.id]);
    expect(rows).toEqual([{ category: "purchased", source: "auto_top_up", amount: 1000 }]);
    expect(await h.attempts(org.id)).toMatchObject([{ status: "succeeded", stripe_payment_intent_id: "pi_ok1", decline_code: null }]);
    await credits.expectConsistent();
  });

  test("a PaymentIntent naming org A's attempt but paid by org B's customer, or naming B in its metadata, grants nothing to anyone", async () => {
    const a = await pendingAttempt();
    const b = await h.orgWithCard();
    const beforeA = (await credits.account(a.org.id)).available;
    const beforeB = (await credits.account(b.org.id)).available;
    const byB = paymentIntentObject({ id: "pi_b1", customer: b.customer, amount: 1900, attemptId: a.attempt.id, organizationId: b.org.id });
    expect(await h.apply(stripeEvent("payment_intent.succeeded", byB, T0))).toBe("ignored");
    const namingB = paymentIntentObject({ id: "pi_b2", customer: a.customer, amount: 1900, attemptId: a.attempt.id, organizationId: b.org.id });
    expect(await h.apply(stripeEvent("payment_intent.succeeded", namingB, T0))).toBe("ignored");
    expect((await credits.account(a.org.id)).available).toBe(beforeA);
    expect((await credits.account(b.org.id)).available).toBe(beforeB);
    expect((await h.attempts(a.org.id))[0].status).toBe("processing");
  });

  test("once the attempt has its PaymentIntent, another one naming it grants nothing; a wrong amount fails loudly", async () => {
    const { org, customer, attempt } = await pendingAttempt();
    await db.owner.query("select app_private.record_auto_top_up_result($1, 'sent', 'pi_mine1')", [attempt.id]);
    const before = (await credits.account(org.id)).available;
    expect(await h.apply(stripeEvent("payment_intent.succeeded", paymentIntentObject({ id: "pi_other1", customer, amount: 1900, attemptId: attempt.id }), T0))).toBe("ignored");
    const wrong = stripeEvent("payment_intent.succeeded", paymentIntentObject({ id: "pi_mine1", customer, amount: 100, attemptId: attempt.id }), T0);
    await db.owner.query("select app_private.receive_stripe_event($1::jsonb)", [JSON.stringify(wrong)]);
    await expect(db.owner.query("select app_private.process_stripe_event($1)", [wrong.id])).rejects.toThrow(/asked for 1900 usd/);
    expect((await credits.account(org.id)).available).toBe(before);
    // not an auto top-up at all (a Checkout purchase's PaymentIntent): ignored here
    expect(await h.apply(stripeEvent("payment_intent.succeeded", paymentIntentObject({ id: "pi_checkout1", customer, amount: 1900 }), T0))).toBe("ignored");
  });
});

describe("payment_intent.payment_failed", () => {
  test("records the decline code, backs off and mails the admins; a later success still grants", async () => {
    const { org, customer, attempt } = await pendingAttempt();
    const intent = paymentIntentObject({ id: "pi_fail1", customer, amount: 1900, attemptId: attempt.id, status: "requires_payment_method", declineCode: "insufficient_funds" });
    expect(await h.apply(stripeEvent("payment_intent.payment_failed", intent, T0))).toBe("applied");
    expect(await h.attempts(org.id)).toMatchObject([{ status: "failed", decline_code: "insufficient_funds", stripe_payment_intent_id: "pi_fail1" }]);
    expect((await h.rule(org.id)).retry_after).not.toBeNull();
    expect(await h.jobs("send_auto_top_up_email", org.id)).toMatchObject([{ payload: { kind: "declined", attemptId: attempt.id } }]);
    // the money did come in after all (Stripe retried): the credits are granted
    const before = (await credits.account(org.id)).available;
    expect(await h.apply(stripeEvent("payment_intent.succeeded", paymentIntentObject({ id: "pi_fail1", customer, amount: 1900, attemptId: attempt.id }), T0 + 60))).toBe("applied");
    expect((await credits.account(org.id)).available).toBe(before + 1000);
  });
});
