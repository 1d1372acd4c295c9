// Auto top-up over real HTTP with the operations a client uses
// (test/operations/auto-top-up/auto-top-up.graphql), the local fake Stripe API and real signed
// webhooks: an admin saves a card through Checkout in setup mode (setup_intent.succeeded stores
// it), sets the rule, sees the attempts a spend starts, and turns it off; members get FORBIDDEN,
// other organizations NOT_FOUND or nothing; bad amounts INVALID_AMOUNT.

import { readFileSync } from "node:fs";
import path from "node:path";
import { runOnce } from "graphile-worker";
import { buildSchema, Kind, parse, print, validate, type OperationDefinitionNode } from "postgraphile/graphql";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { twoTenants, type TestUser } from "../helpers/fixtures.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { deliver, startFakeStripe, stripeConfigFor, stripeEvent, T0, type FakeStripe } from "../helpers/stripe.ts";
import { autoTopUpHelpers, setupIntentObject, setUpAutoTopUp } from "../helpers/auto-top-up.ts";
import { taskList } from "../../workers/tasks/index.ts";
import { projectRoot } from "../../core/paths.ts";

let db: TestDatabase;
let fake: FakeStripe;
let server: TestServer;
let pack: string;
beforeAll(async () => {
  db = await createTestDatabase();
  pack = await setUpAutoTopUp(db);
  fake = await startFakeStripe();
  server = await startTestServer(db, { stripe: stripeConfigFor(fake) });
});
afterAll(async () => {
  await server?.close();
  await fake?.close();
  await db?.drop();
});

const h = autoTopUpHelpers(() => db);
const text = readFileSync(path.join(projectRoot, "test", "operations", "auto-top-up", "auto-top-up.graphql"), "utf8");
const operations = Object.fromEntries(
  parse(text).definitions
    .filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION)
    .map((d) => [d.name!.value, print(d)]),
);
const run = (name: string, variables: Record<string, unknown>, as: TestUser) => {
  expect(operations[name]).toBeDefined();
  return server.graphql(operations[name], variables, as);
};
const code = (response: { errors?: { extensions?: { code?: string } }[] }) => response.errors?.[0]?.extensions?.code;

test("the operations are valid against schema.graphql", () => {
  const schema = buildSchema(readFileSync(path.join(projectRoot, "schema.graphql"), "utf8"));
  expect(validate(schema, parse(text)).map((e) => e.message)).toEqual([]);
  expect(Object.keys(operations).sort()).toEqual(["AutoTopUp", "DisableAutoTopUp", "SaveCardForAutoTopUp", "SetAutoTopUp"]);
});

test("save a card, set the rule, see the attempt a spend starts, turn it off; members and other organizations cannot", async () => {
  const { a, b } = await twoTenants(db);
  const org = a.org.id;

  // 1. Checkout in setup mode (a Stripe customer is made for the organization on the way)
  expect(code(await run("SaveCardForAutoTopUp", { organizationId: org }, a.member))).toBe("FORBIDDEN");
  expect(code(await run("SaveCardForAutoTopUp", { organizationId: org }, b.owner))).toBe("NOT_FOUND");
  const saved = await run("SaveCardForAutoTopUp", { organizationId: org }, a.admin);
  expect(saved.errors).toBeUndefined();
  expect(saved.data.createAutoTopUpSetupSession.url).toMatch(/^https:\/\/checkout\.stripe\.com\/c\/pay\/cs_/);
  const setup = fake.requests.find((r) => r.path === "/v1/checkout/sessions" && r.form["setup_intent_data[metadata][organization_id]"] === org)!;
  expect(setup.form).toMatchObject({ mode: "setup", "allowed_payment_method_types[0]": "card" });
  const customer = setup.form.customer;
  expect(customer).toMatch(/^cus_/);

  // without the card the rule cannot be set
  const rule = { organizationId: org, creditPackageId: pack, threshold: "200", maxPerMonth: 3, monthlyLimitAmount: "5700" };
  expect(code(await run("SetAutoTopUp", rule, a.admin))).toBe("NO_PAYMENT_METHOD");

  // 2. Stripe says the card is saved (signed delivery, applied by the worker)
  const event = stripeEvent("setup_intent.succeeded", setupIntentObject({ id: "seti_api1", customer, paymentMethod: "pm_card_visa", organizationId: org }), T0);
  expect((await deliver(server.url, event)).status).toBe(200);
  await runOnce({ connectionString: db.ownerUrl, taskList, concurrency: 1, noHandleSignals: true, noPreparedStatements: true });

  // 3. the rule
  expect(code(await run("SetAutoTopUp", rule, a.member))).toBe("FORBIDDEN");
  expect(code(await run("SetAutoTopUp", { ...rule, organizationId: org }, b.owner))).toBe("NOT_FOUND");
  expect(code(await run("SetAutoTopUp", { ...rule, threshold: "-5" }, a.admin))).toBe("INVALID_AMOUNT");
  expect(code(await run("SetAutoTopUp", { ...rule, monthlyLimitAmount: "12.5" }, a.admin))).toBe("INVALID_AMOUNT");
  const set = await run("SetAutoTopUp", rule, a.admin);
  expect(set.errors).toBeUndefined();
  expect(set.data.setAutoTopUp.autoTopUpRule).toEqual({
    enabled: true, threshold: "200", targetBalance: null, maxPerMonth: 3, monthlyLimitAmount: "5700", currency: "usd", paymentMethodSaved: true,
  });

  // 4. a spend crossing the threshold: the admin sees the attempt; a member and b see nothing
  await h.spend(org, 1);
  const seen = await run("AutoTopUp", { organizationId: org }, a.admin);
  expect(seen.data.organization.autoTopUpRule).toMatchObject({ enabled: true, pausedReason: null, creditPackage: { id: pack, unitAmount: "1900", currency: "usd" } });
  expect(seen.data.organization.autoTopUpAttempts.nodes).toMatchObject([{ status: "pending", quantity: 1, credits: "1000", amount: "1900", currency: "usd" }]);
  const byMember = await run("AutoTopUp", { organizationId: org }, a.member);
  expect(byMember.data.organization).toMatchObject({ autoTopUpRule: null, autoTopUpAttempts: { nodes: [] } });
  expect((await run("AutoTopUp", { organizationId: org }, b.owner)).data.organization).toBeNull();

  // 5. off: the waiting attempt is canceled
  expect(code(await run("DisableAutoTopUp", { organizationId: org }, a.member))).toBe("FORBIDDEN");
  expect(code(await run("DisableAutoTopUp", { organizationId: org }, b.owner))).toBe("NOT_FOUND");
  const off = await run("DisableAutoTopUp", { organizationId: org }, a.owner);
  expect(off.data.disableAutoTopUp.autoTopUpRule).toEqual({ enabled: false });
  const after = await run("AutoTopUp", { organizationId: org }, a.admin);
  expect(after.data.organization.autoTopUpAttempts.nodes.map((n: { status: string }) => n.status)).toEqual(["canceled"]);
});

test("with billing off, an admin is told BILLING_NOT_CONFIGURED (after the permission checks), a member FORBIDDEN", async () => {
  const off = await startTestServer(db, { stripe: stripeConfigFor(null, { secretKey: null, webhookSecret: null }) });
  try {
    const { a } = await twoTenants(db);
    const as = (user: TestUser) => off.graphql(operations.SaveCardForAutoTopUp, { organizationId: a.org.id }, user);
    expect(code(await as(a.admin))).toBe("BILLING_NOT_CONFIGURED");
    expect(code(await as(a.member))).toBe("FORBIDDEN");
  } finally {
    await off.close();
  }
});

test("a pack bought with saveCardForAutoTopUp keeps its card: the signed payment_intent.succeeded saves it", async () => {
  const { a } = await twoTenants(db);
  const buy = await server.graphql(
    `mutation ($organizationId: UUID!, $creditPackageId: UUID!) {
      createCheckoutSession(input: { organizationId: $organizationId, creditPackageId: $creditPackageId, saveCardForAutoTopUp: true }) { url }
    }`,
    { organizationId: a.org.id, creditPackageId: pack },
    a.admin,
  );
  expect(buy.errors).toBeUndefined();
  const request = fake.requests.find((r) => r.path === "/v1/checkout/sessions" && r.form["metadata[organization_id]"] === a.org.id && r.form.mode === "payment")!;
  expect(request.form["payment_intent_data[setup_future_usage]"]).toBe("off_session");
  const intent = {
    id: "pi_api_pack1", object: "payment_intent", amount: 1900, amount_received: 1900, currency: "usd", status: "succeeded",
    customer: request.form.customer, payment_method: "pm_card_from_pack", setup_future_usage: "off_session",
    metadata: { organization_id: a.org.id, credit_package_id: pack },
  };
  expect((await deliver(server.url, stripeEvent("payment_intent.succeeded", intent, T0))).status).toBe(200);
  await runOnce({ connectionString: db.ownerUrl, taskList, concurrency: 1, noHandleSignals: true, noPreparedStatements: true });
  const set = await run("SetAutoTopUp", { organizationId: a.org.id, creditPackageId: pack, threshold: "10", maxPerMonth: 1, monthlyLimitAmount: "1900" }, a.admin);
  expect(set.errors).toBeUndefined();
  expect(set.data.setAutoTopUp.autoTopUpRule.paymentMethodSaved).toBe(true);
});
