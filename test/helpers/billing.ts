// Shared set-up of the billing tests (test/db/300-billing): prices on the plans, a credit package,
// an event stored and processed the way the worker does it, organizations with their starting
// balance, and a Stripe subscription object for an organization.

import type { TestDatabase } from "./db.ts";
import { createOrganization, createUser } from "./fixtures.ts";
import { subscriptionObject, T0, type StripeEvent } from "./stripe.ts";

export const DAY = 86400;

/** Stripe prices for the pro and enterprise plans and one 1,000-credit package; returns its id. */
export async function setUpBilling(db: TestDatabase): Promise<string> {
  await db.owner.query("update app_public.plans set stripe_price_id = 'price_pro' where id = 'pro'");
  await db.owner.query("update app_public.plans set stripe_price_id = 'price_ent' where id = 'enterprise'");
  const { rows } = await db.owner.query(
    "insert into app_public.credit_packages (name, credits, stripe_price_id) values ('1,000 credits', 1000, 'price_pack_1000') returning id",
  );
  return rows[0].id;
}

export function billingHelpers(getDb: () => TestDatabase) {
  async function apply(event: StripeEvent): Promise<string> {
    const db = getDb();
    await db.owner.query("select app_private.receive_stripe_event($1::jsonb)", [JSON.stringify(event)]);
    const { rows } = await db.owner.query("select app_private.process_stripe_event($1) as outcome", [event.id]);
    return rows[0].outcome;
  }

  async function balance(organizationId: string): Promise<number> {
    const { rows } = await getDb().owner.query(
      "select coalesce((select available + reserved from app_public.credit_accounts where organization_id = $1), 0)::int as n",
      [organizationId],
    );
    return rows[0].n;
  }

  // New organizations may start with the free plan's allowance; count from there.
  const baseline = new Map<string, number>();
  async function newOrg() {
    const db = getDb();
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
    const { rows } = await getDb().owner.query("select * from app_public.subscriptions where organization_id = $1", [organizationId]);
    return rows[0];
  }

  async function planOf(organizationId: string): Promise<string> {
    const { rows } = await getDb().owner.query("select (app_private.organization_plan($1)).id", [organizationId]);
    return rows[0].id;
  }

  return { apply, balance, newOrg, available, subscription, planOf };
}

export function sub(org: { id: string }, customer: string, status: string, extra: Partial<Parameters<typeof subscriptionObject>[0]> = {}) {
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
