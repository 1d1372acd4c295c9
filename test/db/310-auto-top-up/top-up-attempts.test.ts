// When auto top-up charges (db/functions/310-auto-top-up/top-up-attempts.sql): never past the
// rule's monthly count or money ceiling; at most 3 attempts in 10 minutes (a burst is logged,
// audited and mailed to the admins once); a declined card rests an hour and the admins get the
// decline code; authentication_required pauses the rule and mails the link; the worker's view of
// an attempt (begin, record) never undoes what a webhook already settled.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { autoTopUpCycle, autoTopUpHelpers, setUpAutoTopUp } from "../../helpers/auto-top-up.ts";
import { creditHelpers } from "../../helpers/credits.ts";

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

/** Spends down to `floor` credits, or one credit when already there. */
async function spendDownTo(org: string, floor: number) {
  const { available } = await credits.account(org);
  await h.spend(org, available > floor ? available - floor : 1);
}

async function audits(org: string, action: string) {
  const { rows } = await db.owner.query("select details from app_public.audit_events where organization_id = $1 and action = $2", [org, action]);
  return rows;
}

test("spend and refill cycles stop at the monthly count", async () => {
  const { org, owner, customer } = await h.orgWithCard();
  await h.setRule(owner, org.id, pack, 50, 2, 1_000_000);
  for (let i = 0; i < 4; i++) {
    await spendDownTo(org.id, 10);
    const open = (await h.attempts(org.id)).filter((a) => a.status === "pending");
    if (open.length) expect(await pay(open[0].id, customer)).toBe("applied");
    await age(org.id);
  }
  const attempts = await h.attempts(org.id);
  expect(attempts.map((a) => a.status)).toEqual(["succeeded", "succeeded"]);
  expect((await credits.account(org.id)).available).toBe(9); // two packs, each spent down to 10; then one more credit
  expect((await db.owner.query("select * from app_private.auto_top_up_discrepancies()")).rows).toEqual([]);
});

test("the money ceiling is never passed (a declined attempt's money does not count; its attempt does)", async () => {
  const { org, owner, customer } = await h.orgWithCard();
  await h.setRule(owner, org.id, pack, 50, 10, 2 * 1900 + 100);
  for (let i = 0; i < 4; i++) {
    await spendDownTo(org.id, 10);
    const open = (await h.attempts(org.id)).filter((a) => a.status === "pending");
    if (open.length) await pay(open[0].id, customer);
    await age(org.id);
  }
  expect((await h.attempts(org.id)).map((a) => a.amount)).toEqual([1900, 1900]);
});

test("a burst: the 4th attempt within 10 minutes is refused, logged in the audit log and mailed to the admins once", async () => {
  const { org, owner, customer } = await h.orgWithCard();
  await h.setRule(owner, org.id, pack, 50, 100, 1_000_000);
  for (let i = 0; i < 5; i++) {
    await spendDownTo(org.id, 10);
    const open = (await h.attempts(org.id)).filter((a) => a.status === "pending");
    if (open.length) await pay(open[0].id, customer);
  }
  expect(await h.attempts(org.id)).toHaveLength(3);
  expect(await audits(org.id, "auto_top_up.burst")).toEqual([{ details: { attempts: 3, available: 10 } }]);
  expect(await h.jobs("send_auto_top_up_email", org.id)).toMatchObject([{ payload: { organizationId: org.id, attemptId: null, kind: "burst" } }]);
  expect((await h.rule(org.id)).burst_alerted_at).not.toBeNull();
  // after the window, it charges again (moved 11 minutes back rather than to the month's start,
  // which in a month's first 10 minutes is still inside the window)
  await age(org.id, "now() - interval '11 minutes'");
  await h.spend(org.id, 1);
  expect(await h.attempts(org.id)).toHaveLength(4);
});

test("a declined card: the attempt fails, the rule rests an hour, the admins are mailed the decline code", async () => {
  const { org, owner } = await h.orgWithCard();
  await h.setRule(owner, org.id, pack, 90);
  await h.spend(org.id, 20);
  const [attempt] = await h.attempts(org.id);
  const begun = await db.owner.query("select * from app_private.begin_auto_top_up_attempt($1)", [attempt.id]);
  expect(begun.rows[0]).toMatchObject({ organization_id: org.id, status: "processing", amount: "1900", currency: "usd", stripe_payment_method_id: expect.stringMatching(/^pm_/) });
  const { rows } = await db.owner.query("select app_private.record_auto_top_up_result($1, 'declined', 'pi_declined1', 'insufficient_funds') as s", [attempt.id]);
  expect(rows[0].s).toBe("failed");
  expect(await h.attempts(org.id)).toMatchObject([{ status: "failed", decline_code: "insufficient_funds", stripe_payment_intent_id: "pi_declined1" }]);
  const rule = await h.rule(org.id);
  expect(rule.last_decline_code).toBe("insufficient_funds");
  const { rows: backoff } = await db.owner.query("select retry_after between now() + interval '59 minutes' and now() + interval '1 hour' as ok from app_public.auto_top_up_rules where organization_id = $1", [org.id]);
  expect(backoff[0].ok).toBe(true);
  expect(await h.jobs("send_auto_top_up_email", org.id)).toMatchObject([{ payload: { attemptId: attempt.id, kind: "declined" } }]);
  // within the hour: no new attempt
  await h.spend(org.id, 5);
  expect(await h.attempts(org.id)).toHaveLength(1);
  // after it: one
  await db.owner.query("update app_public.auto_top_up_rules set retry_after = now() - interval '1 second' where organization_id = $1", [org.id]);
  await h.spend(org.id, 5);
  expect(await h.attempts(org.id)).toHaveLength(2);
});

test("authentication_required pauses auto top-up with the link for the admins until it succeeds", async () => {
  const { org, owner, customer } = await h.orgWithCard();
  await h.setRule(owner, org.id, pack, 90);
  await h.spend(org.id, 20);
  const [attempt] = await h.attempts(org.id);
  await db.owner.query("select * from app_private.begin_auto_top_up_attempt($1)", [attempt.id]);
  const { rows } = await db.owner.query(
    "select app_private.record_auto_top_up_result($1, 'authentication_required', 'pi_auth1', null, 'https://checkout.stripe.com/c/pay/cs_x') as s",
    [attempt.id],
  );
  expect(rows[0].s).toBe("requires_action");
  expect(await h.rule(org.id)).toMatchObject({ paused_reason: "authentication_required" });
  expect(await h.jobs("send_auto_top_up_email", org.id)).toMatchObject([{ payload: { attemptId: attempt.id, kind: "authentication_required" } }]);
  // paused: setting the rule again does not lift it, spending starts nothing
  await h.setRule(owner, org.id, pack, 95);
  await h.spend(org.id, 5);
  expect(await h.attempts(org.id)).toHaveLength(1);
  // the attempt's payment completed: credits once, auto top-up resumes
  const { paymentIntentObject } = await import("../../helpers/auto-top-up.ts");
  const { stripeEvent, T0 } = await import("../../helpers/stripe.ts");
  const intent = paymentIntentObject({ id: "pi_auth1", customer, amount: 1900, attemptId: attempt.id });
  expect(await h.apply(stripeEvent("payment_intent.succeeded", intent, T0))).toBe("applied");
  expect(await h.rule(org.id)).toMatchObject({ paused_at: null, paused_reason: null });
  expect((await h.attempts(org.id))[0].status).toBe("succeeded");
});

test("the worker's result never undoes a webhook that came first", async () => {
  const { org, owner, customer } = await h.orgWithCard();
  await h.setRule(owner, org.id, pack, 90);
  await h.spend(org.id, 20);
  const [attempt] = await h.attempts(org.id);
  await db.owner.query("select * from app_private.begin_auto_top_up_attempt($1)", [attempt.id]);
  const { paymentIntentObject } = await import("../../helpers/auto-top-up.ts");
  const { stripeEvent, T0 } = await import("../../helpers/stripe.ts");
  // the webhook, before the worker wrote the PaymentIntent id
  expect(await h.apply(stripeEvent("payment_intent.succeeded", paymentIntentObject({ id: "pi_early1", customer, amount: 1900, attemptId: attempt.id }), T0))).toBe("applied");
  const { rows } = await db.owner.query("select app_private.record_auto_top_up_result($1, 'declined', 'pi_early1', 'card_declined') as s", [attempt.id]);
  expect(rows[0].s).toBe("succeeded");
  expect(await h.attempts(org.id)).toMatchObject([{ status: "succeeded", stripe_payment_intent_id: "pi_early1" }]);
  // and a later worker run of the same attempt has nothing to do
  const again = await db.owner.query("select status from app_private.begin_auto_top_up_attempt($1)", [attempt.id]);
  expect(again.rows).toEqual([{ status: "succeeded" }]);
});
