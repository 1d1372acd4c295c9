// Checkout sessions (db/functions/300-billing/checkout.sql): a paid credit-package checkout grants
// its credits once per session and records the purchase.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { checkoutSessionObject, stripeEvent, T0 } from "../../helpers/stripe.ts";
import { billingHelpers, setUpBilling } from "../../helpers/billing.ts";

let db: TestDatabase;
let packageId: string;
beforeAll(async () => {
  db = await createTestDatabase();
  packageId = await setUpBilling(db);
});
afterAll(() => db?.drop());

const { apply, newOrg, available } = billingHelpers(() => db);

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
