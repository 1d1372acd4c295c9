// Subscription events (db/functions/300-billing/subscriptions.sql): the row follows created /
// updated / deleted in Stripe's order whatever order they arrive in, and the plan with it.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { stripeEvent, subscriptionObject, T0 } from "../../helpers/stripe.ts";
import { billingHelpers, DAY, setUpBilling, sub } from "../../helpers/billing.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  await setUpBilling(db);
});
afterAll(() => db?.drop());

const { apply, newOrg, subscription, planOf } = billingHelpers(() => db);

describe("customer.subscription.*", () => {
  test("created, updated, deleted: the row follows, and so does the effective plan", async () => {
    const { org, customer } = await newOrg();
    expect(await planOf(org.id)).toBe("free");
    expect(await apply(stripeEvent("customer.subscription.created", sub(org, customer, "trialing", { trialEnd: T0 + 14 * DAY }), T0))).toBe("applied");
    expect(await subscription(org.id)).toMatchObject({ status: "trialing", plan_id: "pro", plan_interval: "month", stripe_customer_id: customer });
    expect((await subscription(org.id)).trial_ends_at.getTime()).toBe((T0 + 14 * DAY) * 1000);
    expect(await planOf(org.id)).toBe("pro");

    expect(await apply(stripeEvent("customer.subscription.updated", sub(org, customer, "active", { priceId: "price_ent" }), T0 + 10))).toBe("applied");
    expect(await subscription(org.id)).toMatchObject({ status: "active", plan_id: "enterprise" });
    expect((await subscription(org.id)).current_period_end.getTime()).toBe((T0 + 30 * DAY) * 1000);
    expect(await planOf(org.id)).toBe("enterprise");

    expect(await apply(stripeEvent("customer.subscription.updated", sub(org, customer, "active", { priceId: "price_ent", cancelAtPeriodEnd: true }), T0 + 20))).toBe("applied");
    expect(await subscription(org.id)).toMatchObject({ cancel_at_period_end: true });

    expect(await apply(stripeEvent("customer.subscription.deleted", sub(org, customer, "canceled", { priceId: "price_ent", canceledAt: T0 + 30 }), T0 + 30))).toBe("applied");
    expect(await subscription(org.id)).toMatchObject({ status: "canceled" });
    expect(await planOf(org.id)).toBe("free");

    const audit = await db.owner.query(
      "select details from app_public.audit_events where organization_id = $1 and action = 'subscription.changed' order by created_at",
      [org.id],
    );
    expect(audit.rows.map((r) => r.details.to)).toEqual([
      { status: "trialing", plan_id: "pro" },
      { status: "active", plan_id: "enterprise" },
      { status: "canceled", plan_id: "enterprise" },
    ]);
  });

  test("an event older than the last one applied changes nothing", async () => {
    const { org, customer } = await newOrg();
    const created = stripeEvent("customer.subscription.created", sub(org, customer, "incomplete"), T0);
    const active = stripeEvent("customer.subscription.updated", sub(org, customer, "active"), T0 + 5);
    const deleted = stripeEvent("customer.subscription.deleted", sub(org, customer, "canceled", { canceledAt: T0 + 60 }), T0 + 60);
    expect(await apply(deleted)).toBe("applied");
    expect(await apply(active)).toBe("stale");
    expect(await apply(created)).toBe("stale");
    expect(await subscription(org.id)).toMatchObject({ status: "canceled", last_event_id: deleted.id });
  });

  test("events of the same second resolve the same way in either order", async () => {
    const results: unknown[] = [];
    for (const reversed of [false, true]) {
      const { org, customer } = await newOrg();
      const events = [
        stripeEvent("customer.subscription.created", sub(org, customer, "incomplete"), T0),
        stripeEvent("customer.subscription.updated", sub(org, customer, "active"), T0),
      ];
      for (const event of reversed ? events.reverse() : events) await apply(event);
      const row = await subscription(org.id);
      results.push(row.status);
    }
    expect(results).toEqual(["active", "active"]);
  });

  test("a newer subscription replaces an older one; late events about the old one are ignored", async () => {
    const { org, customer } = await newOrg();
    const oldSub = (status: string) => sub(org, customer, status, { id: "sub_old" + customer.slice(4), created: T0 });
    const newSub = (status: string) => sub(org, customer, status, { id: "sub_new" + customer.slice(4), created: T0 + DAY, priceId: "price_ent" });
    await apply(stripeEvent("customer.subscription.created", newSub("active"), T0 + DAY));
    expect(await apply(stripeEvent("customer.subscription.deleted", oldSub("canceled"), T0 + DAY + 100))).toBe("stale");
    expect(await subscription(org.id)).toMatchObject({ stripe_subscription_id: "sub_new" + customer.slice(4), status: "active", plan_id: "enterprise" });
  });

  test("an active subscription for an unknown price fails loudly", async () => {
    const { org, customer } = await newOrg();
    await expect(apply(stripeEvent("customer.subscription.created", sub(org, customer, "active", { priceId: "price_nope" }), T0)))
      .rejects.toThrow(/no plan has stripe_price_id price_nope/);
  });

  test("an event for a customer we do not know is stored and ignored", async () => {
    const { org } = await newOrg();
    const foreign = subscriptionObject({ id: "sub_foreign1", customer: "cus_foreign1", status: "active", priceId: "price_pro", created: T0, periodStart: T0, periodEnd: T0 + DAY });
    const event = stripeEvent("customer.subscription.created", foreign, T0);
    expect(await apply(event)).toBe("ignored");
    const { rows } = await db.owner.query("select outcome, note, processed_at from app_private.stripe_events where id = $1", [event.id]);
    expect(rows[0]).toMatchObject({ outcome: "ignored", note: "no organization for customer cus_foreign1" });
    expect(await planOf(org.id)).toBe("free");
  });
});
