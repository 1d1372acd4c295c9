// Auto top-up end to end with the real worker, the local fake Stripe API and real signed webhooks:
// a spend crossing the threshold → the auto_top_up job creates one off-session PaymentIntent
// (confirm, idempotency key of the attempt, even across a retried request) → no credits until
// payment_intent.succeeded arrives signed over HTTP, then once however often it is delivered; a
// declined card mails the admins the decline code; authentication_required mails them a link to
// a Checkout page for the pack and pauses the rule until that payment succeeds; a burst mail.

import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { runOnce } from "graphile-worker";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { addMember, createUser } from "../helpers/fixtures.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { deliver, startFakeStripe, stripeConfigFor, stripeEvent, TEST_WEBHOOK_SECRET, type FakeStripe } from "../helpers/stripe.ts";
import { autoTopUpHelpers, paymentIntentObject, setUpAutoTopUp } from "../helpers/auto-top-up.ts";
import { creditHelpers } from "../helpers/credits.ts";
import { taskList } from "../../workers/tasks/index.ts";

let db: TestDatabase;
let fake: FakeStripe;
let server: TestServer;
let pack: string;
let outbox: string;
const ENV = ["OUTBOX_DIR", "SMTP_URL", "APP_URL", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "STRIPE_API_HOST", "STRIPE_API_PORT", "STRIPE_API_PROTOCOL"];
const saved = Object.fromEntries(ENV.map((k) => [k, process.env[k]]));

beforeAll(async () => {
  db = await createTestDatabase();
  pack = await setUpAutoTopUp(db);
  fake = await startFakeStripe();
  server = await startTestServer(db, { stripe: stripeConfigFor(fake) });
  outbox = mkdtempSync(path.join(os.tmpdir(), "tenantbase-top-up-outbox-"));
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
  rmSync(outbox, { recursive: true, force: true });
  await server?.close();
  await fake?.close();
  await db?.drop();
});

const h = autoTopUpHelpers(() => db);
const credits = creditHelpers(() => db);

async function work(): Promise<void> {
  await runOnce({ connectionString: db.ownerUrl, taskList, concurrency: 1, noHandleSignals: true });
}
const mails = (prefix: string) => readdirSync(outbox).filter((f) => f.startsWith(prefix)).map((f) => readFileSync(path.join(outbox, f), "utf8"));
const intentRequests = (attemptId: string) =>
  fake.requests.filter((r) => r.method === "POST" && r.path === "/v1/payment_intents" && r.form["metadata[auto_top_up_attempt_id]"] === attemptId);

async function crossing(paymentMethod?: string) {
  const made = await h.orgWithCard(paymentMethod ? { paymentMethod } : {});
  const admin = await createUser(db, "Ada Admin");
  const member = await createUser(db, "Mo Member");
  await addMember(db, made.org.id, admin, "admin");
  await addMember(db, made.org.id, member, "member");
  await h.setRule(made.owner, made.org.id, pack, 90);
  await h.spend(made.org.id, 20);
  const [attempt] = await h.attempts(made.org.id);
  return { ...made, admin, member, attempt };
}

test("one off-session PaymentIntent per attempt (idempotent across a retried request); credits only with the signed payment_intent.succeeded, once", async () => {
  const { org, customer, attempt } = await crossing();
  const before = (await credits.account(org.id)).available;
  fake.failNext(1); // the first request fails with a 500: the SDK retries with the same key
  await work();
  const sent = intentRequests(attempt.id);
  expect(sent.length).toBeGreaterThanOrEqual(2);
  expect(new Set(sent.map((r) => r.headers["idempotency-key"]))).toEqual(new Set([`tenantbase-auto-top-up-${attempt.id}`]));
  expect(sent[0].form).toMatchObject({ amount: "1900", currency: "usd", customer, off_session: "true", confirm: "true", "metadata[organization_id]": org.id });
  const made = [...fake.paymentIntents.values()].filter((pi) => pi.metadata.auto_top_up_attempt_id === attempt.id);
  expect(made).toHaveLength(1);
  const [after] = await h.attempts(org.id);
  expect(after).toMatchObject({ status: "processing", stripe_payment_intent_id: made[0].id });
  expect((await credits.account(org.id)).available).toBe(before); // nothing before Stripe says so

  // the job again (a crash after Stripe answered): the same PaymentIntent, nothing new
  await db.owner.query("select graphile_worker.add_job('auto_top_up', json_build_object('organizationId', $1::uuid, 'attemptId', $2::uuid))", [org.id, attempt.id]);
  await work();
  expect([...fake.paymentIntents.values()].filter((pi) => pi.metadata.auto_top_up_attempt_id === attempt.id)).toHaveLength(1);

  const event = stripeEvent("payment_intent.succeeded", made[0], made[0].created);
  expect((await deliver(server.url, event)).status).toBe(200);
  expect((await deliver(server.url, event)).body).toMatchObject({ duplicate: true });
  expect((await deliver(server.url, stripeEvent("payment_intent.succeeded", made[0], made[0].created + 1))).status).toBe(200);
  await work();
  expect((await credits.account(org.id)).available).toBe(before + 1000);
  expect((await h.attempts(org.id))[0].status).toBe("succeeded");
  await credits.expectConsistent();
});

test("a declined card: the attempt fails with Stripe's decline code and every admin and owner (not members) is mailed it", async () => {
  const { org, attempt, admin, member, owner } = await crossing("pm_card_declined_insufficient_funds");
  await work();
  expect(await h.attempts(org.id)).toMatchObject([{ status: "failed", decline_code: "insufficient_funds", stripe_payment_intent_id: expect.stringMatching(/^pi_/) }]);
  expect((await h.rule(org.id)).retry_after).not.toBeNull();
  const sent = mails(`auto-top-up-declined-${org.id}-${attempt.id}`);
  const recipients = sent.map((m) => /^To: (.*)$/m.exec(m)![1]).sort();
  const { rows } = await db.owner.query("select email from app_public.users where id = any($1) order by email", [[admin.userId, owner.userId]]);
  expect(recipients).toEqual(rows.map((r) => r.email));
  expect(sent.join()).not.toContain(member.email);
  for (const eml of sent) {
    expect(eml).toMatch(/Content-Type: text\/plain/);
    expect(eml).toMatch(/Content-Type: text\/html/);
    expect(eml).toContain("decline code: insufficient_funds");
    expect(eml).toContain("$19.00");
  }
});

test("authentication_required: a Checkout link mailed to the admins, the rule paused until that payment succeeds", async () => {
  const { org, customer, attempt } = await crossing("pm_card_authentication_required");
  await work();
  const [after] = await h.attempts(org.id);
  expect(after).toMatchObject({ status: "requires_action", action_url: expect.stringMatching(/^https:\/\/checkout\.stripe\.com\/c\/pay\/cs_/) });
  expect((await h.rule(org.id)).paused_reason).toBe("authentication_required");
  const checkout = fake.requests.find((r) => r.path === "/v1/checkout/sessions" && r.form["metadata[auto_top_up_attempt_id]"] === attempt.id)!;
  expect(checkout.form).toMatchObject({ mode: "payment", customer, "line_items[0][price]": "price_pack_1000", "payment_intent_data[metadata][auto_top_up_attempt_id]": attempt.id });
  const [eml] = mails(`auto-top-up-authentication_required-${org.id}-${attempt.id}`);
  expect(eml).toContain(after.action_url);
  expect(eml).toContain(`href="${after.action_url}"`);

  // paused: another spend starts nothing
  await h.spend(org.id, 1);
  expect(await h.attempts(org.id)).toHaveLength(1);
  // the cardholder pays on the Checkout page: its PaymentIntent names the attempt → resumed
  const paid = paymentIntentObject({ id: "pi_checkout_done1", customer, amount: 1900, attemptId: attempt.id, organizationId: org.id });
  expect((await deliver(server.url, stripeEvent("payment_intent.succeeded", paid, 1_790_000_100))).status).toBe(200);
  await work();
  expect((await h.rule(org.id)).paused_at).toBeNull();
  expect((await h.attempts(org.id))[0].status).toBe("succeeded");
});

test("a burst mail tells the admins, and the worker logs it", async () => {
  const { org } = await h.orgWithCard();
  await db.owner.query("select app_private.queue_auto_top_up_email($1, null, 'burst')", [org.id]);
  await work();
  const [eml] = mails(`auto-top-up-burst-${org.id}`);
  expect(eml).toMatch(/^Subject: Auto top-up for .* stopped: too many purchases at once$/m);
});
