// The Stripe event log (db/functions/300-billing/stripe-events.sql): events stored once and
// processed by type; unknown types ignored; app roles cannot call the functions; and who may read
// the billing tables the events fill.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createUser, twoTenants } from "../../helpers/fixtures.ts";
import { checkoutSessionObject, stripeEvent, T0 } from "../../helpers/stripe.ts";
import { billingHelpers, setUpBilling, sub } from "../../helpers/billing.ts";

let db: TestDatabase;
let packageId: string;
beforeAll(async () => {
  db = await createTestDatabase();
  packageId = await setUpBilling(db);
});
afterAll(() => db?.drop());

const { apply } = billingHelpers(() => db);

test("unknown event types are stored and marked ignored", async () => {
  const event = stripeEvent("customer.created", { id: "cus_unknown", object: "customer" }, T0);
  expect(await apply(event)).toBe("ignored");
  const { rows } = await db.owner.query("select outcome, processed_at, last_error from app_private.stripe_events where id = $1", [event.id]);
  expect(rows[0].outcome).toBe("ignored");
  expect(rows[0].processed_at).not.toBeNull();
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
