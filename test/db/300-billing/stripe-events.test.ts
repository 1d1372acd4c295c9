// The Stripe event log (db/functions/300-billing/stripe-events.sql): events stored once and
// processed by type; unknown types ignored; app roles cannot call the functions; and who may read
// the billing tables the events fill.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createOrganization, createUser, twoTenants } from "../../helpers/fixtures.ts";
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

test("receive_stripe_events stores a batch in one call: each event once, one job for the new ones, an answer per delivery", async () => {
  const a = stripeEvent("customer.created", { id: "cus_batch_a", object: "customer" }, T0);
  const b = stripeEvent("customer.created", { id: "cus_batch_b", object: "customer" }, T0);
  const c = stripeEvent("customer.created", { id: "cus_batch_c", object: "customer" }, T0);
  const receive = async (events: object[]) =>
    (await db.owner.query("select app_private.receive_stripe_events($1::jsonb[]) as new", [events.map((e) => JSON.stringify(e))])).rows[0].new;
  expect(await receive([a])).toEqual([true]);
  // a already stored; b twice in the same batch: only its first delivery is new.
  expect(await receive([b, a, b, c])).toEqual([true, false, false, true]);
  expect(await receive([])).toEqual([]);
  const ids = [a.id, b.id, c.id];
  const { rows: stored } = await db.owner.query("select id from app_private.stripe_events where id = any($1) order by id", [ids]);
  expect(stored.map((r) => r.id)).toEqual([...ids].sort());
  const { rows: jobs } = await db.owner.query(
    `select j.payload from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id
     where t.identifier = 'stripe_events' and j.payload::jsonb @> any (array[jsonb_build_array(jsonb_build_object('eventId', $1::text)),
                                                                          jsonb_build_array(jsonb_build_object('eventId', $2::text))])
     order by j.id`, [a.id, b.id]);
  // One job per call that stored something, naming the new events in order; nothing for the
  // call that stored nothing.
  expect(jobs.map((j) => j.payload)).toEqual([[{ eventId: a.id }], [{ eventId: b.id }, { eventId: c.id }]]);
  // The one-event form answers the same.
  expect((await db.owner.query("select app_private.receive_stripe_event($1::jsonb) as new", [JSON.stringify(c)])).rows[0].new).toBe(false);
  // One malformed event refuses the whole batch: nothing of it is stored.
  const d = stripeEvent("customer.created", { id: "cus_batch_d", object: "customer" }, T0);
  await expect(receive([d, { id: "not_an_event", type: "x", created: 1 }])).rejects.toMatchObject({ code: "22023" });
  expect((await db.owner.query("select count(*)::int as n from app_private.stripe_events where id = $1", [d.id])).rows[0].n).toBe(0);
  await db.owner.query("delete from graphile_worker._private_jobs where task_id = (select id from graphile_worker._private_tasks where identifier = 'stripe_events')");
});

test("process_stripe_events applies each event in a transaction of its own: a failing one is recorded, the others applied", async () => {
  const owner = await createUser(db);
  const org = await createOrganization(db, owner, "Procedure Org");
  const checkout = (session: string, creditPackageId: string) =>
    stripeEvent("checkout.session.completed", checkoutSessionObject({ id: session, customer: "cus_proc", organizationId: org.id, creditPackageId }), T0);
  const first = checkout("cs_test_proc1", packageId);
  const broken = checkout("cs_test_proc2", "00000000-0000-7000-8000-000000000003");
  const last = checkout("cs_test_proc3", packageId);
  await db.owner.query("select app_private.receive_stripe_events($1::jsonb[])", [[first, broken, last].map((e) => JSON.stringify(e))]);
  const ids = [first.id, broken.id, "evt_not_stored", last.id];
  const { rows } = await db.owner.query("call app_private.process_stripe_events($1::text[], null, null)", [ids]);
  expect(rows[0].outcomes).toEqual(["applied", null, null, "applied"]);
  expect(rows[0].errors).toEqual([null, expect.stringMatching(/credit package .* does not exist/), "stripe event evt_not_stored is not stored", null]);
  const state = async () =>
    (await db.owner.query(
      "select id, attempts, processed_at is not null as processed, last_error is not null as failed from app_private.stripe_events where id = any($1) order by id",
      [ids],
    )).rows;
  expect(await state()).toEqual(
    [
      { id: first.id, attempts: 1, processed: true, failed: false },
      { id: broken.id, attempts: 1, processed: false, failed: true },
      { id: last.id, attempts: 1, processed: true, failed: false },
    ].sort((x, y) => (x.id < y.id ? -1 : 1)),
  );
  const grants = async () =>
    (await db.owner.query("select count(*)::int as n from app_public.credit_ledger where organization_id = $1 and source = 'purchase'", [org.id])).rows[0].n;
  expect(await grants()).toBe(2);
  // Again (a retry after a crash): nothing applied twice, each attempt counted.
  const again = await db.owner.query("call app_private.process_stripe_events($1::text[], null, null)", [[first.id, last.id]]);
  expect(again.rows[0].outcomes).toEqual(["applied", "applied"]);
  expect(await grants()).toBe(2);
  expect(Object.fromEntries((await state()).map((r) => [r.id, r.attempts]))).toEqual({ [first.id]: 2, [broken.id]: 1, [last.id]: 2 });
  // Only the owner (the worker's role) may call it.
  await expect(db.queryAs(owner, "call app_private.process_stripe_events('{}', null, null)")).rejects.toThrow(/permission denied/);
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
    await expect(db.queryAs(user, "select app_private.receive_stripe_events('{}')")).rejects.toThrow(/permission denied/);
  });
});
