// The effective plan (db/functions/300-billing/effective-plan.sql): a billed subscription's plan
// while it is active, trialing or past_due within the grace period; else the organization's own.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { stripeEvent } from "../../helpers/stripe.ts";
import { billingHelpers, DAY, setUpBilling, sub } from "../../helpers/billing.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  await setUpBilling(db);
});
afterAll(() => db?.drop());

const { apply, newOrg, planOf } = billingHelpers(() => db);

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
