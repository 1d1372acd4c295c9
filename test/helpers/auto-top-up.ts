// Shared set-up of the auto top-up tests (test/db/310-auto-top-up, test/workers, test/adversarial):
// a credit pack with a price, an organization with a Stripe customer and a saved card (through a
// real setup_intent.succeeded event), the rule set as an admin, spending, and Stripe objects of
// the shapes PaymentIntents and SetupIntents have.

import type { TestDatabase, Actor } from "./db.ts";
import { billingHelpers, setUpBilling } from "./billing.ts";
import { stripeEvent, T0 } from "./stripe.ts";

/** The 1,000-credit package of setUpBilling, priced at 1,900 cents for automatic purchase. */
export async function setUpAutoTopUp(db: TestDatabase): Promise<string> {
  const packageId = await setUpBilling(db);
  await db.owner.query("update app_public.credit_packages set unit_amount = 1900, currency = 'usd' where id = $1", [packageId]);
  return packageId;
}

export function setupIntentObject(options: { id: string; customer: string; paymentMethod: string; organizationId?: string }) {
  return {
    id: options.id,
    object: "setup_intent",
    customer: options.customer,
    payment_method: options.paymentMethod,
    status: "succeeded",
    usage: "off_session",
    livemode: false,
    metadata: options.organizationId ? { organization_id: options.organizationId } : {},
  };
}

export function paymentIntentObject(options: {
  id: string;
  customer: string;
  amount: number;
  attemptId?: string;
  organizationId?: string;
  status?: string;
  currency?: string;
  declineCode?: string;
}) {
  const succeeded = (options.status ?? "succeeded") === "succeeded";
  return {
    id: options.id,
    object: "payment_intent",
    amount: options.amount,
    amount_received: succeeded ? options.amount : 0,
    currency: options.currency ?? "usd",
    customer: options.customer,
    status: options.status ?? "succeeded",
    livemode: false,
    off_session: true,
    payment_method: "pm_card_visa",
    last_payment_error: options.declineCode
      ? { type: "card_error", code: "card_declined", decline_code: options.declineCode, message: "Your card was declined." }
      : null,
    metadata: {
      ...(options.organizationId ? { organization_id: options.organizationId } : {}),
      ...(options.attemptId ? { auto_top_up_attempt_id: options.attemptId } : {}),
    },
  };
}

export function autoTopUpHelpers(getDb: () => TestDatabase) {
  const billing = billingHelpers(getDb);
  let n = 0;

  /** An organization with its Stripe customer and a card saved through setup_intent.succeeded. */
  async function orgWithCard(options: { card?: boolean; paymentMethod?: string } = {}) {
    const db = getDb();
    const made = await billing.newOrg();
    await db.owner.query("insert into app_private.stripe_customers (organization_id, stripe_customer_id) values ($1, $2)", [
      made.org.id,
      made.customer,
    ]);
    if (options.card !== false) {
      n += 1;
      const intent = setupIntentObject({ id: `seti_${n}${made.customer.slice(4, 12)}`, customer: made.customer, paymentMethod: options.paymentMethod ?? `pm_card_${n}`, organizationId: made.org.id });
      expect(await billing.apply(stripeEvent("setup_intent.succeeded", intent, T0))).toBe("applied");
    }
    return made;
  }

  const setRule = (as: Actor, org: string, packageId: string, threshold: unknown, maxPerMonth: unknown = 5, limit: unknown = 100000, target: unknown = null) =>
    getDb()
      .queryAs(as, "select * from app_public.set_auto_top_up($1, $2, $3, $4, $5, $6)", [org, packageId, threshold, maxPerMonth, limit, target])
      .then((r) => r.rows[0]);

  const disable = (as: Actor, org: string) =>
    getDb().queryAs(as, "select * from app_public.disable_auto_top_up($1)", [org]).then((r) => r.rows[0]);

  async function attempts(org: string) {
    const { rows } = await getDb().owner.query(
      `select id, status, quantity, credits::int, amount::int, currency, stripe_payment_intent_id, decline_code, action_url
       from app_public.auto_top_up_attempts where organization_id = $1 order by created_at, id`,
      [org],
    );
    return rows;
  }

  async function rule(org: string) {
    const { rows } = await getDb().owner.query("select * from app_public.auto_top_up_rules where organization_id = $1", [org]);
    return rows[0];
  }

  /** Spends credits the way a debit does (the account's available goes down under its lock). */
  const spend = (org: string, amount: number) => getDb().owner.query("select app_private.debit_credits($1, $2, 'manual', null)", [org, amount]);
  const grant = (org: string, amount: number) => getDb().owner.query("select app_private.grant_credits($1, $2, 'manual', null, null)", [org, amount]);

  /** The auto top-up jobs queued for an organization. */
  async function jobs(task: string, org: string) {
    const { rows } = await getDb().owner.query(
      `select j.key, j.payload from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id
       where t.identifier = $1 and j.payload->>'organizationId' = $2`,
      [task, org],
    );
    return rows;
  }

  return { ...billing, orgWithCard, setRule, disable, attempts, rule, spend, grant, jobs };
}

/** The cycle the worker and Stripe make: begin, PaymentIntent sent, payment_intent.succeeded. */
export function autoTopUpCycle(getDb: () => TestDatabase) {
  const billing = billingHelpers(getDb);
  let n = 0;
  async function pay(attemptId: string, customer: string, created = T0): Promise<string> {
    const db = getDb();
    const { rows } = await db.owner.query("select * from app_private.begin_auto_top_up_attempt($1)", [attemptId]);
    n += 1;
    const pi = `pi_cycle${n}${attemptId.replace(/-/g, "").slice(0, 10)}`;
    await db.owner.query("select app_private.record_auto_top_up_result($1, 'sent', $2)", [attemptId, pi]);
    const intent = paymentIntentObject({ id: pi, customer, amount: Number(rows[0].amount), attemptId, organizationId: rows[0].organization_id });
    return billing.apply(stripeEvent("payment_intent.succeeded", intent, created));
  }
  /** Moves an organization's attempts out of the burst window, still in this month (the audit
   * trigger keeps created_at, so the update runs with triggers off, as the superuser). */
  async function age(org: string, to = "app_hidden.auto_top_up_month_start(now())") {
    const client = await getDb().root.connect();
    try {
      await client.query("begin");
      await client.query("set local session_replication_role = replica");
      await client.query(`update app_public.auto_top_up_attempts set created_at = ${to} where organization_id = $1`, [org]);
      await client.query("commit");
    } finally {
      client.release();
    }
  }
  return { pay, age };
}
