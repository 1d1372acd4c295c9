// Stripe event processing in SQL (app_private.process_stripe_event), one event type at a time,
// the order-proof rules, the effective plan, and who may read the billing tables.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { createUser, createOrganization, twoTenants } from "../helpers/fixtures.ts";
import {
  checkoutSessionObject,
  invoiceObject,
  stripeEvent,
  subscriptionObject,
  T0,
  type StripeEvent,
} from "../helpers/stripe.ts";

let db: TestDatabase;
let packageId: string;
const DAY = 86400;

beforeAll(async () => {
  db = await createTestDatabase();
  await db.owner.query("update app_public.plans set stripe_price_id = 'price_pro' where id = 'pro'");
  await db.owner.query("update app_public.plans set stripe_price_id = 'price_ent' where id = 'enterprise'");
  const { rows } = await db.owner.query(
    "insert into app_public.credit_packages (name, credits, stripe_price_id) values ('1,000 credits', 1000, 'price_pack_1000') returning id",
  );
  packageId = rows[0].id;
});
afterAll(() => db?.drop());

async function apply(event: StripeEvent): Promise<string> {
  await db.owner.query("select app_private.receive_stripe_event($1::jsonb)", [JSON.stringify(event)]);
  const { rows } = await db.owner.query("select app_private.process_stripe_event($1) as outcome", [event.id]);
  return rows[0].outcome;
}

async function balance(organizationId: string): Promise<number> {
  const { rows } = await db.owner.query(
    "select coalesce((select available + reserved from app_public.credit_accounts where organization_id = $1), 0)::int as n",
    [organizationId],
  );
  return rows[0].n;
}

// New organizations may start with the free plan's allowance; count from there.
const baseline = new Map<string, number>();
async function newOrg() {
  const owner = await createUser(db);
  const org = await createOrganization(db, owner, "Billing Org");
  const customer = `cus_${org.id.replace(/-/g, "").slice(0, 14)}`;
  baseline.set(org.id, await balance(org.id));
  return { owner, org, customer };
}

/** Credits added since the organization was created. */
async function available(organizationId: string): Promise<number> {
  return (await balance(organizationId)) - (baseline.get(organizationId) ?? 0);
}

async function subscription(organizationId: string) {
  const { rows } = await db.owner.query("select * from app_public.subscriptions where organization_id = $1", [organizationId]);
  return rows[0];
}

async function planOf(organizationId: string): Promise<string> {
  const { rows } = await db.owner.query("select (app_private.organization_plan($1)).id", [organizationId]);
  return rows[0].id;
}

function sub(org: { id: string }, customer: string, status: string, extra: Partial<Parameters<typeof subscriptionObject>[0]> = {}) {
  return subscriptionObject({
    id: `sub_${customer.slice(4)}`,
    customer,
    status,
    priceId: "price_pro",
    created: T0,
    periodStart: T0,
    periodEnd: T0 + 30 * DAY,
    organizationId: org.id,
    planId: "pro",
    ...extra,
  });
}

describe("checkout.session.completed", () => {
  test("grants the package's credits once per session, and records the purchase", async () => {
    const { org, customer } = await newOrg();
    const session = checkoutSessionObject({ id: `cs_test_${customer}`, customer, organizationId: org.id, creditPackageId: packageId, amountTotal: 1900 });
    const completed = stripeEvent("checkout.session.completed", session, T0);
    expect(await apply(completed)).toBe("applied");
    expect(await available(org.id)).toBe(1000);
    // the same event again, and the async-payment event for the same session: nothing more
    expect(await apply(completed)).toBe("applied");
    expect(await apply(stripeEvent("checkout.session.async_payment_succeeded", session, T0 + 5))).toBe("applied");
    expect(await available(org.id)).toBe(1000);
    const { rows } = await db.owner.query("select * from app_public.invoices where organization_id = $1", [org.id]);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      kind: "credit_purchase",
      stripe_checkout_session_id: session.id,
      status: "paid",
      amount_paid: "1900",
      credits_granted: "1000",
      credit_package_id: packageId,
    });
    const customers = await db.owner.query("select stripe_customer_id from app_private.stripe_customers where organization_id = $1", [org.id]);
    expect(customers.rows).toEqual([{ stripe_customer_id: customer }]);
  });

  test("an unpaid (delayed) session grants nothing; a subscription checkout grants nothing", async () => {
    const { org, customer } = await newOrg();
    const unpaid = checkoutSessionObject({ id: `cs_test_u${customer}`, customer, organizationId: org.id, creditPackageId: packageId, paymentStatus: "unpaid" });
    expect(await apply(stripeEvent("checkout.session.completed", unpaid, T0))).toBe("ignored");
    const subscription = checkoutSessionObject({ id: `cs_test_s${customer}`, customer, organizationId: org.id, mode: "subscription" });
    expect(await apply(stripeEvent("checkout.session.completed", subscription, T0))).toBe("ignored");
    expect(await available(org.id)).toBe(0);
  });

  test("without metadata the organization is found by its stored customer id", async () => {
    const { org, customer } = await newOrg();
    await db.owner.query("insert into app_private.stripe_customers (organization_id, stripe_customer_id) values ($1, $2)", [org.id, customer]);
    const session = checkoutSessionObject({ id: `cs_test_m${customer}`, customer, creditPackageId: packageId });
    expect(await apply(stripeEvent("checkout.session.completed", session, T0))).toBe("applied");
    expect(await available(org.id)).toBe(1000);
  });

  test("an unknown package fails loudly (the job retries and keeps the error)", async () => {
    const { org, customer } = await newOrg();
    const session = checkoutSessionObject({
      id: `cs_test_bad${customer}`, customer, organizationId: org.id, creditPackageId: "00000000-0000-7000-8000-000000000000",
    });
    await expect(apply(stripeEvent("checkout.session.completed", session, T0))).rejects.toThrow(/credit package .* does not exist/);
    expect(await available(org.id)).toBe(0);
  });
});

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

test("unknown event types are stored and marked ignored", async () => {
  const event = stripeEvent("customer.created", { id: "cus_unknown", object: "customer" }, T0);
  expect(await apply(event)).toBe("ignored");
  const { rows } = await db.owner.query("select outcome, processed_at, last_error from app_private.stripe_events where id = $1", [event.id]);
  expect(rows[0].outcome).toBe("ignored");
  expect(rows[0].processed_at).not.toBeNull();
});

describe("effective plan", () => {
  async function withSubscription(status: string, periodStartDaysAgo: number) {
    const { org, customer } = await newOrg();
    const now = Math.floor(Date.now() / 1000);
    const start = now - periodStartDaysAgo * DAY;
    await apply(stripeEvent("customer.subscription.created", sub(org, customer, status, { periodStart: start, periodEnd: start + 30 * DAY }), start));
    return org.id;
  }

  afterEach(() => db.owner.query("update app_private.billing_settings set grace_days = 7"));

  test.each([
    ["active", 1, "pro"],
    ["trialing", 1, "pro"],
    ["canceled", 1, "free"],
    ["unpaid", 1, "free"],
    ["incomplete", 1, "free"],
    ["past_due", 3, "pro"],
    ["past_due", 8, "free"],
  ])("%s (period started %s days ago) → %s with 7 grace days", async (status, daysAgo, plan) => {
    expect(await planOf(await withSubscription(status, daysAgo))).toBe(plan);
  });

  test("the grace period comes from billing_settings (BILLING_GRACE_DAYS)", async () => {
    const orgId = await withSubscription("past_due", 3);
    expect(await planOf(orgId)).toBe("pro");
    await db.owner.query("update app_private.billing_settings set grace_days = 2");
    expect(await planOf(orgId)).toBe("free");
    await db.owner.query("update app_private.billing_settings set grace_days = 0");
    expect(await planOf(orgId)).toBe("free");
    await db.owner.query("update app_private.billing_settings set grace_days = 4");
    expect(await planOf(orgId)).toBe("pro");
  });

  test.each([
    ["active", true], ["trialing", true], ["past_due", true], ["canceled", false], ["unpaid", false], ["incomplete", false],
  ])("organization_has_billed_plan: %s → %s", async (status, billed) => {
    const orgId = await withSubscription(status as string, 1);
    const { rows } = await db.owner.query("select app_private.organization_has_billed_plan($1) as billed", [orgId]);
    expect(rows[0].billed).toBe(billed);
  });

  test("without a subscription the organization's own plan_id applies", async () => {
    const { org } = await newOrg();
    await db.owner.query("update app_public.organizations set plan_id = 'enterprise' where id = $1", [org.id]);
    expect(await planOf(org.id)).toBe("enterprise");
  });
});

describe("who may read billing data", () => {
  test("members read their organization's subscription, admins and owners its invoices; other tenants nothing; nobody writes", async () => {
    const { a, b } = await twoTenants(db);
    const customer = `cus_rls${a.org.id.replace(/-/g, "").slice(0, 10)}`;
    await apply(stripeEvent("customer.subscription.created", sub(a.org, customer, "active"), T0));
    await apply(stripeEvent("checkout.session.completed",
      checkoutSessionObject({ id: `cs_test_rls${customer}`, customer, organizationId: a.org.id, creditPackageId: packageId }), T0));

    const read = async (user: any, table: string) =>
      (await db.queryAs(user, `select organization_id from app_public.${table}`)).rows.map((r) => r.organization_id);
    for (const user of [a.owner, a.admin, a.member]) expect(await read(user, "subscriptions")).toEqual([a.org.id]);
    for (const user of [a.owner, a.admin]) expect(await read(user, "invoices")).toEqual([a.org.id]);
    expect(await read(a.member, "invoices")).toEqual([]);
    for (const user of [b.owner, b.admin, b.member]) {
      expect(await read(user, "subscriptions")).toEqual([]);
      expect(await read(user, "invoices")).toEqual([]);
    }
    for (const user of [a.owner, b.owner]) {
      await expect(db.queryAs(user, "update app_public.subscriptions set status = 'active'")).rejects.toThrow(/permission denied/);
      await expect(db.queryAs(user, "delete from app_public.invoices")).rejects.toThrow(/permission denied/);
      await expect(db.queryAs(user, "insert into app_public.credit_packages (name, credits) values ('free', 1)")).rejects.toThrow(/permission denied/);
      await expect(db.queryAs(user, "select * from app_private.stripe_events")).rejects.toThrow(/permission denied/);
    }
  });

  test("credit packages on sale are readable by signed-in users, not anonymous ones", async () => {
    const user = await createUser(db);
    const { rows } = await db.queryAs(user, "select name, credits from app_public.credit_packages where id = $1", [packageId]);
    expect(rows).toEqual([{ name: "1,000 credits", credits: "1000" }]);
    await db.owner.query("update app_public.credit_packages set active = false where id = $1", [packageId]);
    try {
      expect((await db.queryAs(user, "select id from app_public.credit_packages where id = $1", [packageId])).rows).toEqual([]);
    } finally {
      await db.owner.query("update app_public.credit_packages set active = true where id = $1", [packageId]);
    }
    await expect(db.queryAs(null, "select * from app_public.credit_packages")).rejects.toThrow(/permission denied/);
  });

  test("app roles cannot call the event functions", async () => {
    const user = await createUser(db);
    await expect(db.queryAs(user, "select app_private.process_stripe_event('evt_x')")).rejects.toThrow(/permission denied/);
    await expect(db.queryAs(user, "select app_private.receive_stripe_event('{}')")).rejects.toThrow(/permission denied/);
  });
});
