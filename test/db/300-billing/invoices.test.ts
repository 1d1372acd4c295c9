// Invoice events (db/functions/300-billing/invoices.sql): invoice.paid grants the plan's credits
// once, expiring at the period end; invoice.payment_failed makes the subscription past_due.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { invoiceObject, stripeEvent, T0 } from "../../helpers/stripe.ts";
import { billingHelpers, DAY, setUpBilling, sub } from "../../helpers/billing.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  await setUpBilling(db);
});
afterAll(() => db?.drop());

const { apply, newOrg, available, subscription } = billingHelpers(() => db);

describe("invoice.paid / invoice.payment_failed", () => {
  for (const legacy of [false, true]) {
    test(`invoice.paid upserts the invoice and grants the plan's monthly credits once, expiring at the period end (${legacy ? "pre-2025-03 shape" : "current shape"})`, async () => {
      const { org, customer } = await newOrg();
      await apply(stripeEvent("customer.subscription.created", sub(org, customer, "active"), T0));
      const start = Math.floor(Date.now() / 1000) - DAY;
      const invoice = invoiceObject({
        id: `in_${customer.slice(4)}${legacy ? "l" : "c"}`, customer, subscription: `sub_${customer.slice(4)}`, priceId: "price_pro",
        status: "paid", amount: 2900, periodStart: start, periodEnd: start + 30 * DAY, organizationId: legacy ? undefined : org.id, legacy,
      });
      const paid = stripeEvent("invoice.paid", invoice, start + 60);
      expect(await apply(paid)).toBe("applied");
      expect(await apply(paid)).toBe("applied");
      expect(await apply(stripeEvent("invoice.paid", invoice, start + 61))).toBe("applied");
      expect(await available(org.id)).toBe(5000);
      const grants = await db.owner.query("select amount, expires_at, source from app_public.credit_grants where organization_id = $1 and source = 'subscription'", [org.id]);
      expect(grants.rows).toHaveLength(1);
      expect(grants.rows[0]).toMatchObject({ amount: "5000", source: "subscription" });
      expect(grants.rows[0].expires_at.getTime()).toBe((start + 30 * DAY) * 1000);
      const { rows } = await db.owner.query("select * from app_public.invoices where organization_id = $1", [org.id]);
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({
        kind: "subscription", stripe_invoice_id: invoice.id, stripe_subscription_id: `sub_${customer.slice(4)}`,
        status: "paid", currency: "usd", amount_due: "2900", amount_paid: "2900", plan_id: "pro", credits_granted: "5000",
        hosted_invoice_url: invoice.hosted_invoice_url,
      });
      expect(rows[0].period_end.getTime()).toBe((start + 30 * DAY) * 1000);
      expect(rows[0].paid_at).not.toBeNull();
    });
  }

  test("invoice.payment_failed marks the subscription past_due; a newer active state wins in any order", async () => {
    const outcomes: unknown[] = [];
    for (const order of [[0, 1, 2], [2, 1, 0], [1, 2, 0], [0, 2, 1]]) {
      const { org, customer } = await newOrg();
      const subId = `sub_${customer.slice(4)}`;
      const failed = invoiceObject({ id: `in_f${customer.slice(4)}`, customer, subscription: subId, priceId: "price_pro", status: "open", amount: 2900, periodStart: T0 + 30 * DAY, periodEnd: T0 + 60 * DAY, organizationId: org.id });
      const events = [
        stripeEvent("customer.subscription.created", sub(org, customer, "active"), T0),
        stripeEvent("invoice.payment_failed", failed, T0 + 30 * DAY),
        stripeEvent("customer.subscription.updated", sub(org, customer, "active", { periodStart: T0 + 30 * DAY, periodEnd: T0 + 60 * DAY }), T0 + 31 * DAY),
      ];
      // Before the subscription is known the failure cannot be applied: it fails and is retried.
      for (const i of order) {
        try {
          await apply(events[i]);
        } catch (error) {
          expect(String(error)).toMatch(/not known yet/);
        }
      }
      for (const event of events) {
        const { rows } = await db.owner.query("select processed_at from app_private.stripe_events where id = $1", [event.id]);
        if (rows[0].processed_at === null) await apply(event);
      }
      outcomes.push((await subscription(org.id)).status);
    }
    expect(outcomes).toEqual(["active", "active", "active", "active"]);
  });

  test("a failure newer than the subscription state makes it past_due", async () => {
    const { org, customer } = await newOrg();
    const subId = `sub_${customer.slice(4)}`;
    await apply(stripeEvent("customer.subscription.created", sub(org, customer, "active"), T0));
    const failed = invoiceObject({ id: `in_g${customer.slice(4)}`, customer, subscription: subId, priceId: "price_pro", status: "open", amount: 2900, periodStart: T0, periodEnd: T0 + 30 * DAY, organizationId: org.id });
    expect(await apply(stripeEvent("invoice.payment_failed", failed, T0 + 100))).toBe("applied");
    expect(await subscription(org.id)).toMatchObject({ status: "past_due" });
    // an older subscription event arriving late does not undo it
    expect(await apply(stripeEvent("customer.subscription.updated", sub(org, customer, "active"), T0 + 50))).toBe("applied");
    expect(await subscription(org.id)).toMatchObject({ status: "past_due" });
    const { rows } = await db.owner.query("select status, amount_paid, paid_at from app_public.invoices where stripe_invoice_id = $1", [failed.id]);
    expect(rows[0]).toMatchObject({ status: "open", amount_paid: "0", paid_at: null });
  });
});
