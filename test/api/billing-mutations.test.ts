// createCheckoutSession / createBillingPortalSession over HTTP, against a local fake of the
// Stripe API that records every request (nothing leaves this machine).

import { readFileSync } from "node:fs";
import path from "node:path";
import { projectRoot } from "../../core/paths.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { createOrganization, twoTenants } from "../helpers/fixtures.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { startFakeStripe, stripeConfigFor, type FakeStripe } from "../helpers/stripe.ts";

let db: TestDatabase;
let server: TestServer;
let fake: FakeStripe;
let tenants: Awaited<ReturnType<typeof twoTenants>>;
let packageId: string;

beforeAll(async () => {
  db = await createTestDatabase();
  fake = await startFakeStripe();
  server = await startTestServer(db, { stripe: stripeConfigFor(fake) });
  await db.owner.query("update app_public.plans set stripe_price_id = 'price_pro' where id = 'pro'");
  const { rows } = await db.owner.query(
    "insert into app_public.credit_packages (name, credits, stripe_price_id) values ('1,000 credits', 1000, 'price_pack_1000') returning id",
  );
  packageId = rows[0].id;
  tenants = await twoTenants(db);
});
afterAll(async () => {
  await server?.close();
  await fake?.close();
  await db?.drop();
});

const CHECKOUT = `mutation($input: CreateCheckoutSessionInput!) { createCheckoutSession(input: $input) { url sessionId clientMutationId } }`;
const PORTAL = `mutation($org: UUID!) { createBillingPortalSession(input: {organizationId: $org}) { url } }`;

const codes = (r: { errors?: { extensions?: { code?: string } }[] }) => (r.errors ?? []).map((e) => e.extensions?.code);

async function storedCustomer(organizationId: string): Promise<string | null> {
  const { rows } = await db.owner.query("select stripe_customer_id from app_private.stripe_customers where organization_id = $1", [organizationId]);
  return rows[0]?.stripe_customer_id ?? null;
}

test("buying credits: creates the Stripe customer once, stores it, and puts the metadata on the session", async () => {
  const { org, admin } = tenants.a;
  fake.requests.length = 0;
  const first = await server.graphql(CHECKOUT, { input: { organizationId: org.id, creditPackageId: packageId, clientMutationId: "m1" } }, admin);
  expect(first.errors).toBeUndefined();
  expect(first.data.createCheckoutSession).toMatchObject({ clientMutationId: "m1" });
  expect(first.data.createCheckoutSession.url).toMatch(/^https:\/\/checkout\.stripe\.com\/c\/pay\/cs_test_/);

  expect(fake.requests.map((r) => `${r.method} ${r.path}`)).toEqual(["POST /v1/customers", "POST /v1/checkout/sessions"]);
  const [customerRequest, sessionRequest] = fake.requests;
  expect(customerRequest.headers["stripe-version"]).toBe("2026-10-28.endive");
  expect(customerRequest.headers.authorization).toBe("Bearer sk_test_fake123");
  expect(customerRequest.headers["idempotency-key"]).toBe(`tenantbase-customer-${org.id}`);
  expect(customerRequest.form).toMatchObject({ name: "Alpha Org", email: admin.email, "metadata[organization_id]": org.id });
  const customerId = await storedCustomer(org.id);
  expect(customerId).toMatch(/^cus_fake/);
  expect(sessionRequest.form).toMatchObject({
    mode: "payment",
    customer: customerId,
    client_reference_id: org.id,
    "line_items[0][price]": "price_pack_1000",
    "line_items[0][quantity]": "1",
    "metadata[organization_id]": org.id,
    "metadata[credit_package_id]": packageId,
    "payment_intent_data[metadata][organization_id]": org.id,
  });
  expect(sessionRequest.form.success_url).toContain("{CHECKOUT_SESSION_ID}");

  // Second purchase: the stored customer is reused.
  fake.requests.length = 0;
  const second = await server.graphql(CHECKOUT, { input: { organizationId: org.id, creditPackageId: packageId } }, tenants.a.owner);
  expect(second.errors).toBeUndefined();
  expect(fake.requests.map((r) => r.path)).toEqual(["/v1/checkout/sessions"]);
  expect(fake.requests[0].form.customer).toBe(customerId);
});

test("subscribing to a plan: subscription mode, organization_id in subscription_data.metadata", async () => {
  const { org, owner } = tenants.b;
  fake.requests.length = 0;
  const result = await server.graphql(CHECKOUT, { input: { organizationId: org.id, planId: "pro" } }, owner);
  expect(result.errors).toBeUndefined();
  const session = fake.requests.find((r) => r.path === "/v1/checkout/sessions")!;
  expect(session.form).toMatchObject({
    mode: "subscription",
    "line_items[0][price]": "price_pro",
    "metadata[organization_id]": org.id,
    "metadata[plan_id]": "pro",
    "subscription_data[metadata][organization_id]": org.id,
    "subscription_data[metadata][plan_id]": "pro",
  });
  expect(session.form["payment_intent_data[metadata][organization_id]"]).toBeUndefined();
});

test("concurrent first checkouts of one organization end with one stored customer", async () => {
  const { org, owner } = (await twoTenants(db)).a;
  const results = await Promise.all(
    Array.from({ length: 8 }, () => server.graphql(CHECKOUT, { input: { organizationId: org.id, creditPackageId: packageId } }, owner)),
  );
  expect(results.map((r) => r.errors)).toEqual(Array(8).fill(undefined));
  const customer = await storedCustomer(org.id);
  const sessions = fake.requests.filter((r) => r.path === "/v1/checkout/sessions" && r.form.client_reference_id === org.id);
  expect(sessions).toHaveLength(8);
  expect(new Set(sessions.map((r) => r.form.customer))).toEqual(new Set([customer]));
});

describe("who may start a checkout", () => {
  test("a member: FORBIDDEN; another tenant's admin or owner: NOT_FOUND; anonymous: NOT_AUTHENTICATED — Stripe is never called", async () => {
    const { a, b } = tenants;
    fake.requests.length = 0;
    const input = { organizationId: a.org.id, creditPackageId: packageId };
    expect(codes(await server.graphql(CHECKOUT, { input }, a.member))).toEqual(["FORBIDDEN"]);
    expect(codes(await server.graphql(CHECKOUT, { input }, b.owner))).toEqual(["NOT_FOUND"]);
    expect(codes(await server.graphql(CHECKOUT, { input }, b.admin))).toEqual(["NOT_FOUND"]);
    expect(codes(await server.graphql(PORTAL, { org: a.org.id }, a.member))).toEqual(["FORBIDDEN"]);
    expect(codes(await server.graphql(PORTAL, { org: a.org.id }, b.owner))).toEqual(["NOT_FOUND"]);
    const anonymous = await server.graphql(CHECKOUT, { input });
    expect(codes(anonymous)).toEqual(["NOT_AUTHENTICATED"]);
    expect(fake.requests).toEqual([]);
    expect(await storedCustomer(b.org.id)).not.toBe(await storedCustomer(a.org.id));
  });

  test.each([
    ["both a package and a plan", "INVALID_INPUT", (p: string) => ({ creditPackageId: p, planId: "pro" })],
    ["neither", "INVALID_INPUT", () => ({})],
    ["an unknown package", "NOT_FOUND", () => ({ creditPackageId: "00000000-0000-7000-8000-000000000000" })],
    ["an unknown plan", "NOT_FOUND", () => ({ planId: "platinum" })],
    ["a plan without a Stripe price", "NOT_PURCHASABLE", () => ({ planId: "free" })],
  ])("%s → %s", async (_name, code, extra) => {
    fake.requests.length = 0;
    const result = await server.graphql(CHECKOUT, { input: { organizationId: tenants.a.org.id, ...extra(packageId) } }, tenants.a.owner);
    expect(codes(result)).toEqual([code]);
    expect(fake.requests).toEqual([]);
  });

  test("a malformed organization id is rejected before anything runs", async () => {
    const result = await server.graphql(CHECKOUT, { input: { organizationId: "not-a-uuid", creditPackageId: packageId } }, tenants.a.owner);
    expect(result.errors?.length).toBeGreaterThan(0);
    expect(result.data?.createCheckoutSession ?? null).toBeNull();
  });

  test("an organization that already subscribes: ALREADY_SUBSCRIBED", async () => {
    const { org, owner } = (await twoTenants(db)).a;
    await db.owner.query(
      `insert into app_public.subscriptions (organization_id, stripe_customer_id, stripe_subscription_id, status, plan_id,
         stripe_created_at, last_event_created_at, last_event_rank, last_event_id)
       values ($1, 'cus_already1', 'sub_already1', 'active', 'pro', now(), now(), 1, 'evt_already1')`,
      [org.id],
    );
    expect(codes(await server.graphql(CHECKOUT, { input: { organizationId: org.id, planId: "pro" } }, owner))).toEqual(["ALREADY_SUBSCRIBED"]);
  });
});

test("billing portal: NO_BILLING_ACCOUNT before the first checkout, then a portal URL", async () => {
  const { org, owner } = (await twoTenants(db)).b;
  expect(codes(await server.graphql(PORTAL, { org: org.id }, owner))).toEqual(["NO_BILLING_ACCOUNT"]);
  await server.graphql(CHECKOUT, { input: { organizationId: org.id, creditPackageId: packageId } }, owner);
  fake.requests.length = 0;
  const result = await server.graphql(PORTAL, { org: org.id }, owner);
  expect(result.errors).toBeUndefined();
  expect(result.data.createBillingPortalSession.url).toMatch(/^https:\/\/billing\.stripe\.com\//);
  expect(fake.requests).toHaveLength(1);
  expect(fake.requests[0].form).toEqual({ customer: await storedCustomer(org.id), return_url: "http://localhost:3000/billing" });
});

test("Stripe failing: PAYMENT_PROVIDER_ERROR, and nothing half-stored", async () => {
  const { org, owner } = (await twoTenants(db)).a;
  fake.failNext(10); // more than the client's retries
  const result = await server.graphql(CHECKOUT, { input: { organizationId: org.id, creditPackageId: packageId } }, owner);
  expect(codes(result)).toEqual(["PAYMENT_PROVIDER_ERROR"]);
  fake.failNext(0);
  expect(await storedCustomer(org.id)).toBeNull();
});

test("billing not configured: BILLING_NOT_CONFIGURED (after the permission checks)", async () => {
  const off = await startTestServer(db, { stripe: { ...stripeConfigFor(null), secretKey: null, webhookSecret: null } });
  try {
    const { a } = tenants;
    expect(codes(await off.graphql(CHECKOUT, { input: { organizationId: a.org.id, creditPackageId: packageId } }, a.owner))).toEqual(["BILLING_NOT_CONFIGURED"]);
    expect(codes(await off.graphql(CHECKOUT, { input: { organizationId: a.org.id, creditPackageId: packageId } }, a.member))).toEqual(["FORBIDDEN"]);
    // what a fresh install without Stripe has: no prices, no billing accounts
    expect(codes(await off.graphql(CHECKOUT, { input: { organizationId: a.org.id, planId: "free" } }, a.owner))).toEqual(["BILLING_NOT_CONFIGURED"]);
    const fresh = await createOrganization(db, a.owner, "Never Billed");
    expect(codes(await off.graphql(PORTAL, { org: fresh.id }, a.owner))).toEqual(["BILLING_NOT_CONFIGURED"]);
  } finally {
    await off.close();
  }
});

test("subscriptions, invoices and credit packages are readable through GraphQL; members do not see invoices", async () => {
  const { a, b } = tenants;
  const Q = `{ billingSubscriptions { nodes { organizationId status planId } } invoices { nodes { organizationId kind } } creditPackages { nodes { id name credits } } }`;
  const asAdmin = await server.graphql(Q, {}, a.admin);
  expect(asAdmin.errors).toBeUndefined();
  expect(asAdmin.data.creditPackages.nodes).toEqual(expect.arrayContaining([{ id: packageId, name: "1,000 credits", credits: "1000" }]));
  const asOther = await server.graphql(Q, {}, b.member);
  expect(asOther.data.billingSubscriptions.nodes.filter((n: any) => n.organizationId === a.org.id)).toEqual([]);
  expect(asOther.data.invoices.nodes).toEqual([]);
});

test("docs/billing.md's billing query runs as written", async () => {
  const { a } = tenants;
  const doc = readFileSync(path.join(projectRoot, "docs", "billing.md"), "utf8");
  const DOC_QUERY = [...doc.matchAll(/```graphql\n([\s\S]*?)```/g)].map((m) => m[1]).find((block) => block.startsWith("query Billing("))!;
  expect(DOC_QUERY).toBeDefined();
  const result = await server.graphql(DOC_QUERY, { org: a.org.id }, a.owner);
  expect(result.errors).toBeUndefined();
  expect(result.data.organization).toEqual({ billingSubscription: null });
  expect(result.data.creditPackages.nodes.map((n: any) => n.id)).toContain(packageId);
});
