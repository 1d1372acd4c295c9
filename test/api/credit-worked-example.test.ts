// The worked example of docs/credits.md ("Worked example"), played over real HTTP with the
// operations a client uses (test/operations/credit-controls, credit-alerts, auto-top-up), the real
// worker, the local fake Stripe API and real signed webhooks: a plan with 10,000 monthly credits,
// a 2,000-credit promotion, a 5,000-credit monthly cap on the Images project with an 80% alert, a
// low-balance alert, and auto top-up buying a 5,000-credit pack when the balance falls to 1,000.
// Spending uses the allowance first, crosses the 80% alert (recorded, emailed to the admins), is
// refused by the cap, and drains the balance outside the project until exactly one top-up is paid
// and its purchased credits arrive.

import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Logger, runOnce } from "graphile-worker";
import { Kind, parse, print, type OperationDefinitionNode } from "postgraphile/graphql";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { addMember, createOrganization, createUser, type TestUser } from "../helpers/fixtures.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { deliver, startFakeStripe, stripeConfigFor, stripeEvent, TEST_WEBHOOK_SECRET, T0, type FakeStripe } from "../helpers/stripe.ts";
import { setupIntentObject } from "../helpers/auto-top-up.ts";
import { generationHelpers } from "../helpers/generations.ts";
import { awayFromTheDayTurn, creditHelpers } from "../helpers/credits.ts";
import { taskList } from "../../workers/tasks/index.ts";
import { projectRoot } from "../../core/paths.ts";

let db: TestDatabase;
let fake: FakeStripe;
let server: TestServer;
let outbox: string;
const ENV = ["OUTBOX_DIR", "SMTP_URL", "APP_URL", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "STRIPE_API_HOST", "STRIPE_API_PORT", "STRIPE_API_PROTOCOL"];
const saved = Object.fromEntries(ENV.map((k) => [k, process.env[k]]));

beforeAll(async () => {
  db = await createTestDatabase();
  fake = await startFakeStripe();
  server = await startTestServer(db, { stripe: stripeConfigFor(fake) });
  outbox = mkdtempSync(path.join(os.tmpdir(), "tenantbase-worked-example-outbox-"));
  Object.assign(process.env, {
    OUTBOX_DIR: outbox,
    APP_URL: "https://app.example.test/",
    STRIPE_SECRET_KEY: "sk_test_fake123",
    STRIPE_WEBHOOK_SECRET: TEST_WEBHOOK_SECRET,
    STRIPE_API_HOST: "127.0.0.1",
    STRIPE_API_PORT: String(fake.port),
    STRIPE_API_PROTOCOL: "http",
  });
  delete process.env.SMTP_URL;
});
afterAll(async () => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  if (outbox) rmSync(outbox, { recursive: true, force: true });
  await server?.close();
  await fake?.close();
  await db?.drop();
});

/** The whole story runs inside one UTC day, month and cap period (they all turn at midnight UTC). */
beforeEach(() => awayFromTheDayTurn(db, 60), 75000);

/** The named operations of test/operations/<dir>/<dir>.graphql, as the *-doc tests and the API tests load them. */
function operationsOf(dir: string): Record<string, string> {
  const text = readFileSync(path.join(projectRoot, "test", "operations", dir, `${dir}.graphql`), "utf8");
  return Object.fromEntries(
    parse(text).definitions
      .filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION)
      .map((d) => [d.name!.value, print(d)]),
  );
}
const operations = { ...operationsOf("credit-controls"), ...operationsOf("credit-alerts"), ...operationsOf("auto-top-up") };
const run = (name: string, variables: Record<string, unknown>, as: TestUser) => {
  expect(operations[name]).toBeDefined();
  return server.graphql(operations[name], variables, as);
};

// docs/credits.md, "Generations": the Start and Complete operations, with the amounts as variables.
const START = `mutation Start($org: UUID!, $project: UUID!, $estimated: BigFloat!, $key: String!) {
  startGeneration(input: {
    organizationId: $org, projectId: $project, kind: image, model: "flux-1",
    metadata: { prompt: "a fluffy orange kitten" }, estimatedCredits: $estimated, idempotencyKey: $key
  }) { generation { id status creditsEstimated } }
}`;
const COMPLETE = `mutation Complete($id: UUID!, $credits: BigFloat!) {
  completeGeneration(input: { generationId: $id, credits: $credits }) { generation { status creditsCharged } }
}`;

const quiet = new Logger(() => () => {});
// No prepared statements: under TEST_PGBOUNCER a later runOnce may meet the earlier one's on a pooled connection.
const work = () => runOnce({ connectionString: db.ownerUrl, taskList, concurrency: 1, noHandleSignals: true, noPreparedStatements: true, logger: quiet });
const { project } = generationHelpers(() => db);
const credits = creditHelpers(() => db);

test("10,000 monthly credits, a promotion, a project cap with an 80% alert, and auto top-up: the whole story", async () => {
  // The operator's set-up: the plan grants 10,000 credits a month (here the plan organizations
  // start on), and a 5,000-credit pack priced for automatic purchase ($75.00).
  await db.owner.query("update app_public.plans set monthly_credits = 10000 where id = 'free'");
  const { rows: packs } = await db.owner.query(
    `insert into app_public.credit_packages (name, credits, stripe_price_id, unit_amount, currency)
     values ('5,000 credits', 5000, 'price_pack_5000', 7500, 'usd') returning id`);
  const pack = packs[0].id as string;

  const owner = await createUser(db, "Olga Owner");
  const acme = (await createOrganization(db, owner, "Acme")).id;
  const admin = await createUser(db, "Ada Admin");
  const member = await createUser(db, "Mo Member");
  await addMember(db, acme, admin, "admin");
  await addMember(db, acme, member, "member");
  const images = await project(owner, acme, "Images");
  const other = await project(owner, acme, "Video");

  // Marketing's promotion, from SQL.
  await db.owner.query(
    "select app_private.grant_credits_as($1::uuid, 2000, 'promotional', 'spring_promo', now() + interval '60 days', 'promo:spring-2026:' || $1)",
    [acme]);

  // 1. The balance by category.
  const balance = await run("CreditBalance", { organizationId: acme }, member);
  expect(balance.errors).toBeUndefined();
  expect(balance.data.organization.creditAccount).toEqual({
    available: "12000", reserved: "0", availableByCategory: { allowance: 10000, promotional: 2000, refund: 0, purchased: 0 },
  });
  expect(balance.data.organization.creditGrants.nodes.map((g: any) => [g.category, g.priority, g.remaining]).sort()).toEqual(
    [["allowance", 10, "10000"], ["promotional", 20, "2000"]]);

  // 2. The Images project may spend 5,000 credits a month; admins hear at 80% and below 1,500.
  const cap = await run("SetSpendCap", { organizationId: acme, projectId: images, period: "month", maxCredits: "5000" }, admin);
  expect(cap.errors).toBeUndefined();
  const { rows: ends } = await db.owner.query(
    `select to_char(app_hidden.spend_cap_window_end('month', app_hidden.spend_cap_window_start('month', now())) at time zone 'UTC',
                    'YYYY-MM-DD"T"HH24:MI:SS"Z"') as e`);
  const monthEnd = ends[0].e as string;
  expect(cap.data.setSpendCap.creditSpendCap).toMatchObject({ scope: "project", period: "month", maxCredits: "5000", spent: "0", projectId: images });
  expect(new Date(cap.data.setSpendCap.creditSpendCap.resetsAt).toISOString()).toBe(monthEnd.replace("Z", ".000Z"));
  const capId = cap.data.setSpendCap.creditSpendCap.id;
  const at80 = await run("SetCreditAlertThreshold", { organizationId: acme, kind: "cap_used", capId, percent: 80 }, admin);
  expect(at80.data.setCreditAlertThreshold.creditAlertThreshold).toMatchObject({ kind: "cap_used", capId, percent: 80, lastFiredAt: null });
  const low = await run("SetCreditAlertThreshold", { organizationId: acme, kind: "low_balance", balanceAtMost: "1500" }, admin);
  expect(low.data.setCreditAlertThreshold.creditAlertThreshold).toMatchObject({ kind: "low_balance", balanceAtMost: "1500" });

  // 3. Auto top-up: the admin saves a card (Checkout in setup mode; Stripe's signed
  // setup_intent.succeeded stores it), then sets the rule: at 1,000 buy one 5,000-credit pack,
  // at most 3 times and $225.00 a month.
  const saveCard = await run("SaveCardForAutoTopUp", { organizationId: acme }, admin);
  expect(saveCard.errors).toBeUndefined();
  expect(saveCard.data.createAutoTopUpSetupSession.url).toMatch(/^https:\/\/checkout\.stripe\.com\/c\/pay\/cs_/);
  const setup = fake.requests.find((r) => r.path === "/v1/checkout/sessions" && r.form["setup_intent_data[metadata][organization_id]"] === acme)!;
  expect(setup.form).toMatchObject({ mode: "setup" });
  const customer = setup.form.customer;
  const cardSaved = stripeEvent("setup_intent.succeeded",
    setupIntentObject({ id: "seti_acme", customer, paymentMethod: "pm_card_visa", organizationId: acme }), T0);
  expect((await deliver(server.url, cardSaved)).status).toBe(200);
  await work();
  const rule = await run("SetAutoTopUp",
    { organizationId: acme, creditPackageId: pack, threshold: "1000", maxPerMonth: 3, monthlyLimitAmount: "22500" }, admin);
  expect(rule.errors).toBeUndefined();
  expect(rule.data.setAutoTopUp.autoTopUpRule).toEqual({
    enabled: true, threshold: "1000", targetBalance: null, maxPerMonth: 3, monthlyLimitAmount: "22500", currency: "usd", paymentMethodSaved: true,
  });

  // 4. A generation in Images: 3,000 estimated and charged, paid by the allowance (priority 10).
  const g1 = await server.graphql(START, { org: acme, project: images, estimated: "3000", key: "acme-1" }, member);
  expect(g1.errors).toBeUndefined();
  const done1 = await server.graphql(COMPLETE, { id: g1.data.startGeneration.generation.id, credits: "3000" }, member);
  expect(done1.data.completeGeneration.generation).toEqual({ status: "succeeded", creditsCharged: "3000" });
  const ledger1 = await run("SpendLedger", { organizationId: acme }, member);
  const capture1 = ledger1.data.organization.creditLedgerEntries.nodes.find((e: any) => e.kind === "capture");
  expect(capture1.amount).toBe("-3000");
  expect(capture1.grantAllocations.nodes.map((a: any) => [a.grant.category, a.amount])).toEqual([["allowance", "3000"]]);
  expect((await run("RecentCreditAlerts", { organizationId: acme }, member)).data.organization.creditAlerts.nodes).toEqual([]);

  // 5. The next one, 1,200, takes Images to 4,200 of 5,000 (84%): the 80% alert fires, once, is
  // listed, and its email job is queued; the worker mails the admin and the owner, not the member.
  const g2 = await server.graphql(START, { org: acme, project: images, estimated: "1200", key: "acme-2" }, member);
  expect(g2.errors).toBeUndefined();
  expect((await server.graphql(COMPLETE, { id: g2.data.startGeneration.generation.id, credits: "1200" }, member)).errors).toBeUndefined();
  const alerts = await run("RecentCreditAlerts", { organizationId: acme }, member);
  expect(alerts.errors).toBeUndefined();
  expect(alerts.data.organization.creditAlerts.nodes).toEqual([
    expect.objectContaining({ kind: "cap_used", thresholdId: at80.data.setCreditAlertThreshold.creditAlertThreshold.id, capId, percent: 80,
      capSpent: "4200", capLimit: "5000", capPeriod: "month" }),
  ]);
  const capAlert = alerts.data.organization.creditAlerts.nodes[0];
  expect(new Date(capAlert.capResetsAt).toISOString()).toBe(monthEnd.replace("Z", ".000Z"));
  const { rows: alertJobs } = await db.owner.query(
    `select j.key, j.payload from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id
     where t.identifier = 'send_credit_alert_email' and j.payload->>'organizationId' = $1`, [acme]);
  expect(alertJobs).toEqual([{ key: `credit_alert:${capAlert.id}`, payload: expect.objectContaining({ organizationId: acme, alertId: capAlert.id }) }]);
  await work();
  const mailed = readdirSync(outbox).filter((f) => f.startsWith(`credit-alert-${capAlert.id}-`));
  expect(mailed.some((f) => f.includes(owner.userId))).toBe(true);
  expect(mailed.some((f) => f.includes(admin.userId))).toBe(true);
  expect(mailed.some((f) => f.includes(member.userId))).toBe(false);
  expect(mailed).toHaveLength(2);

  // 6. A generation of 1,000 more in Images is refused by the cap, and none is created.
  const refused = await server.graphql(START, { org: acme, project: images, estimated: "1000", key: "acme-3" }, member);
  expect(refused.data?.startGeneration ?? null).toBeNull();
  expect(refused.errors?.[0].message).toBe("This project's spend cap allows 5000 credits per month; 4200 are spent and 1000 more were asked.");
  const extensions = refused.errors?.[0].extensions as any;
  expect(extensions).toMatchObject({
    code: "SPEND_CAP_REACHED", capId, scope: "project", projectId: images, period: "month", limit: 5000, spent: 4200, requested: 1000, resetsAt: monthEnd,
  });
  expect(extensions.retryAfter).toBeGreaterThan(0);
  const { rows: made } = await db.owner.query("select count(*)::int as n from app_public.generations where organization_id = $1", [acme]);
  expect(made[0].n).toBe(2);
  const caps = await run("SpendCaps", { organizationId: acme }, member);
  expect(caps.data.organization.creditSpendCaps.nodes).toMatchObject([{ id: capId, scope: "project", spent: "4200", project: { name: "Images" } }]);

  // 7. Work outside Images goes on: a generation in Video and a batch job's reservation take the
  // balance from 7,800 to 1,000. The allowance runs out (its last 5,000), the promotion pays the rest;
  // the balance is at the rule's threshold: one auto top-up attempt, and the low-balance alert.
  const g3 = await server.graphql(START, { org: acme, project: other, estimated: "800", key: "acme-4" }, member);
  expect(g3.errors).toBeUndefined();
  expect((await server.graphql(COMPLETE, { id: g3.data.startGeneration.generation.id, credits: "800" }, member)).errors).toBeUndefined();
  const batch = await run("ReserveCredits", { organizationId: acme, amount: "6000", idempotencyKey: "acme-batch-1" }, member);
  expect(batch.errors).toBeUndefined();
  const captured = await run("CaptureCredits", { reservationId: batch.data.reserveCredits.creditReservation.id, amount: "6000" }, member);
  expect(captured.data.captureCredits.creditReservation).toMatchObject({ status: "captured", capturedAmount: "6000" });
  const ledger2 = await run("SpendLedger", { organizationId: acme }, member);
  const capture2 = ledger2.data.organization.creditLedgerEntries.nodes.find((e: any) => e.kind === "capture");
  expect(capture2.grantAllocations.nodes.map((a: any) => [a.grant.category, a.amount]).sort()).toEqual([["allowance", "5000"], ["promotional", "1000"]]);
  const drained = await run("CreditBalance", { organizationId: acme }, member);
  expect(drained.data.organization.creditAccount).toEqual({
    available: "1000", reserved: "0", availableByCategory: { allowance: 0, promotional: 1000, refund: 0, purchased: 0 },
  });
  const lowAlerts = (await run("RecentCreditAlerts", { organizationId: acme }, member)).data.organization.creditAlerts.nodes;
  expect(lowAlerts.map((a: any) => [a.kind, a.available, a.balanceAtMost])).toEqual([["low_balance", "1000", "1500"], ["cap_used", null, null]]);
  const pending = await run("AutoTopUp", { organizationId: acme }, admin);
  expect(pending.data.organization.autoTopUpAttempts.nodes).toMatchObject([{ status: "pending", quantity: 1, credits: "5000", amount: "7500", currency: "usd" }]);

  // Another spend below the threshold while the attempt is under way starts no second one.
  const more = await run("ReserveCredits", { organizationId: acme, amount: "100", idempotencyKey: "acme-batch-2" }, member);
  expect((await run("CaptureCredits", { reservationId: more.data.reserveCredits.creditReservation.id }, member)).errors).toBeUndefined();

  // 8. The worker charges the saved card once, off-session; no credits until Stripe says it is paid.
  await work();
  const charges = fake.requests.filter((r) => r.method === "POST" && r.path === "/v1/payment_intents");
  expect(charges).toHaveLength(1);
  expect(charges[0].form).toMatchObject({ amount: "7500", currency: "usd", customer, payment_method: "pm_card_visa", off_session: "true", confirm: "true", "metadata[organization_id]": acme });
  const sent = await run("AutoTopUp", { organizationId: acme }, admin);
  const [attempt] = sent.data.organization.autoTopUpAttempts.nodes;
  expect(sent.data.organization.autoTopUpAttempts.nodes).toHaveLength(1);
  expect(attempt.status).toBe("processing");
  expect(charges[0].form["metadata[auto_top_up_attempt_id]"]).toBe(attempt.id);
  expect((await credits.account(acme)).available).toBe(900);

  // 9. Stripe's signed payment_intent.succeeded: the 5,000 purchased credits arrive.
  const intent = fake.paymentIntents.get([...fake.paymentIntents.keys()][0])!;
  expect((await deliver(server.url, stripeEvent("payment_intent.succeeded", intent, intent.created))).status).toBe(200);
  await work();
  const topped = await run("CreditBalance", { organizationId: acme }, member);
  expect(topped.data.organization.creditAccount).toEqual({
    available: "5900", reserved: "0", availableByCategory: { allowance: 0, promotional: 900, refund: 0, purchased: 5000 },
  });
  expect(topped.data.organization.creditGrants.nodes.filter((g: any) => g.category === "purchased")).toMatchObject([{ priority: 40, amount: "5000", expiresAt: null }]);
  const paid = await run("AutoTopUp", { organizationId: acme }, admin);
  expect(paid.data.organization.autoTopUpAttempts.nodes).toMatchObject([{ id: attempt.id, status: "succeeded", credits: "5000", amount: "7500" }]);
  expect(fake.requests.filter((r) => r.method === "POST" && r.path === "/v1/payment_intents")).toHaveLength(1);
  await credits.expectConsistent();
});
