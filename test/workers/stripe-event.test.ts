// The whole path with a real worker: signed deliveries over HTTP → stored events → jobs →
// graphile-worker → process_stripe_events. Duplicates racing in shuffled order end in the same
// state as one in-order delivery; a transient failure is retried and applied once; a job that
// gives up leaves its error on the event; a plan change reaches the next request's limits.

import pg from "pg";
import type { Runner } from "graphile-worker";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { createUser, createOrganization, type TestUser } from "../helpers/fixtures.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { startWorker } from "../../workers/runner.ts";
import {
  checkoutSessionObject,
  deliver,
  invoiceObject,
  stripeConfigFor,
  stripeEvent,
  subscriptionObject,
  type StripeEvent,
} from "../helpers/stripe.ts";

let db: TestDatabase;
let server: TestServer;
let worker: Runner | null = null;
let packageId: string;
const DAY = 86400;
// One Stripe clock for both scenarios, so their end states compare field for field.
const BASE = Math.floor(Date.now() / 1000) - 40 * DAY;

beforeAll(async () => {
  db = await createTestDatabase();
  await db.owner.query("update app_public.plans set stripe_price_id = 'price_pro' where id = 'pro'");
  await db.owner.query("update app_public.plans set stripe_price_id = 'price_ent' where id = 'enterprise'");
  const { rows } = await db.owner.query(
    "insert into app_public.credit_packages (name, credits, stripe_price_id) values ('500 credits', 500, 'price_pack_500') returning id",
  );
  packageId = rows[0].id;
  server = await startTestServer(db, { stripe: stripeConfigFor(null) });
});
afterAll(async () => {
  await worker?.stop();
  await server?.close();
  await db?.drop();
});

async function runWorker() {
  worker = await startWorker({ ownerUrl: db.ownerUrl, crontab: null, pollInterval: 100, concurrency: 4 });
}
async function stopWorker() {
  await worker?.stop();
  worker = null;
}

async function waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false>, seconds = 45): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// The job holding an event: deliveries are queued in batches, one stripe_events job per batch.
const JOB_OF_EVENT = "payload::jsonb @> jsonb_build_array(jsonb_build_object('eventId', $1::text))";

async function allProcessed(events: StripeEvent[]) {
  await waitFor("events processed", async () => {
    const { rows } = await db.owner.query(
      "select count(*)::int as n from app_private.stripe_events where id = any($1) and processed_at is not null",
      [events.map((e) => e.id)],
    );
    return rows[0].n === events.length;
  });
}

async function balance(organizationId: string): Promise<number> {
  const { rows } = await db.owner.query(
    "select coalesce((select available + reserved from app_public.credit_accounts where organization_id = $1), 0)::int as n",
    [organizationId],
  );
  return rows[0].n;
}

/** A customer's life: a credit pack, a subscription that starts, fails a renewal, recovers, upgrades. */
function scenario(organizationId: string, tag: string): StripeEvent[] {
  const customer = `cus_${tag}`;
  const subId = `sub_${tag}`;
  const base = BASE;
  const s = (status: string, at: number, extra: Record<string, unknown> = {}) =>
    subscriptionObject({
      id: subId, customer, status, priceId: "price_pro", created: base + 10, periodStart: base + 10,
      periodEnd: base + 10 + 30 * DAY, organizationId, planId: "pro", ...extra,
    });
  const renewal = base + 10 + 30 * DAY;
  const invoice = (id: string, status: "paid" | "open", start: number, priceId = "price_pro") =>
    invoiceObject({ id, customer, subscription: subId, priceId, status, amount: 2900, periodStart: start, periodEnd: start + 30 * DAY, organizationId });
  return [
    stripeEvent("checkout.session.completed",
      checkoutSessionObject({ id: `cs_test_${tag}`, customer, organizationId, creditPackageId: packageId, amountTotal: 900 }), base),
    stripeEvent("customer.subscription.created", s("incomplete", base + 10), base + 10),
    stripeEvent("customer.subscription.updated", s("active", base + 11), base + 11),
    stripeEvent("invoice.paid", invoice(`in_1${tag}`, "paid", base + 10), base + 11),
    stripeEvent("invoice.payment_failed", invoice(`in_2${tag}`, "open", renewal), renewal),
    stripeEvent("customer.subscription.updated", s("past_due", renewal, { periodStart: renewal, periodEnd: renewal + 30 * DAY }), renewal),
    stripeEvent("customer.subscription.updated",
      s("active", renewal + DAY, { periodStart: renewal, periodEnd: renewal + 30 * DAY, priceId: "price_ent" }), renewal + DAY),
    stripeEvent("invoice.paid", invoice(`in_2${tag}`, "paid", renewal, "price_ent"), renewal + DAY),
    stripeEvent("customer.subscription.updated",
      s("active", renewal + DAY + 5, { periodStart: renewal, periodEnd: renewal + 30 * DAY, priceId: "price_ent", cancelAtPeriodEnd: true }), renewal + DAY + 5),
    stripeEvent("customer.created", { id: customer, object: "customer" }, base),
  ];
}

async function finalState(organizationId: string, start: number) {
  const sub = await db.owner.query(
    `select status, plan_id, plan_interval, current_period_start, current_period_end, cancel_at_period_end,
            canceled_at, trial_ends_at, stripe_created_at, last_event_created_at, last_event_rank
     from app_public.subscriptions where organization_id = $1`,
    [organizationId],
  );
  const invoices = await db.owner.query(
    `select kind, status, currency, amount_due, amount_paid, period_start, period_end, plan_id, credits_granted,
            credit_package_id, paid_at is not null as paid
     from app_public.invoices where organization_id = $1 order by kind, period_start`,
    [organizationId],
  );
  const grants = await db.owner.query(
    `select l.source, l.amount, g.expires_at from app_public.credit_ledger l
     left join app_public.credit_grants g on g.organization_id = l.organization_id and g.id = l.grant_id
     where l.organization_id = $1 and l.kind = 'grant' and l.source in ('purchase', 'subscription')
     order by source, amount`,
    [organizationId],
  );
  return {
    subscription: sub.rows,
    invoices: invoices.rows,
    grants: grants.rows,
    creditsAdded: (await balance(organizationId)) - start,
    plan: (await db.owner.query("select (app_private.organization_plan($1)).id", [organizationId])).rows[0].id,
  };
}

function shuffle<T>(items: T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i -= 1) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

async function newOrg(name: string) {
  const owner = await createUser(db);
  const org = await createOrganization(db, owner, name);
  return { owner, org, start: await balance(org.id) };
}

test("every event delivered three times, shuffled and racing, ends where one in-order delivery ends", async () => {
  await runWorker();
  try {
    // In order: one delivery at a time, each processed before the next.
    const inOrder = await newOrg("In Order");
    const ordered = scenario(inOrder.org.id, "ordered1");
    for (const event of ordered) {
      expect((await deliver(server.url, event)).status).toBe(200);
      await allProcessed([event]);
    }
    const expected = await finalState(inOrder.org.id, inOrder.start);
    expect(expected.subscription).toHaveLength(1);
    expect(expected.subscription[0]).toMatchObject({ status: "active", plan_id: "enterprise", cancel_at_period_end: true });
    expect(expected.plan).toBe("enterprise");
    expect(expected.grants.map((g: any) => [g.source, g.amount])).toEqual([["purchase", "500"], ["subscription", "5000"], ["subscription", "50000"]]);
    expect(expected.creditsAdded).toBeGreaterThan(0);

    // Shuffled: three copies of each event, all sent at once over concurrent connections.
    const shuffled = await newOrg("Shuffled");
    const events = scenario(shuffled.org.id, "shuffled1");
    const deliveries = shuffle([...events, ...events, ...events]);
    const responses = await Promise.all(deliveries.map((event) => deliver(server.url, event)));
    expect(responses.map((r) => r.status)).toEqual(Array(deliveries.length).fill(200));
    expect(responses.filter((r) => r.body.duplicate === false)).toHaveLength(events.length);
    await allProcessed(events);
    const actual = await finalState(shuffled.org.id, shuffled.start);

    // Same state, field for field (the Stripe times are the same in both scenarios).
    expect(actual).toEqual(expected);
    const stored = await db.owner.query("select count(*)::int as n from app_private.stripe_events where id = any($1)", [events.map((e) => e.id)]);
    expect(stored.rows[0].n).toBe(events.length);
  } finally {
    await stopWorker();
  }
});

test("a job that throws (transient database error) is retried and then applied once", async () => {
  const { org, start } = await newOrg("Flaky");
  // The first insert into invoices fails with a serialization failure; the sequence is not
  // transactional, so the rollback does not reset it and the retry gets through.
  await db.root.query("create sequence public.flaky_invoices_seq");
  await db.root.query("grant usage on sequence public.flaky_invoices_seq to app_owner");
  await db.root.query(`
    create function public.flaky_invoices() returns trigger language plpgsql volatile as $$
    begin
      if nextval('public.flaky_invoices_seq') = 1 then
        raise exception 'simulated transient failure' using errcode = '40001';
      end if;
      return new;
    end $$`);
  await db.root.query("create trigger _001_flaky before insert on app_public.invoices for each row execute function public.flaky_invoices()");
  try {
    const event = stripeEvent("checkout.session.completed",
      checkoutSessionObject({ id: "cs_test_flaky1", customer: "cus_flaky1", organizationId: org.id, creditPackageId: packageId }),
      Math.floor(Date.now() / 1000));
    expect((await deliver(server.url, event)).status).toBe(200);
    await runWorker();
    await allProcessed([event]);
    const { rows } = await db.owner.query("select attempts, last_error, outcome from app_private.stripe_events where id = $1", [event.id]);
    expect(rows[0]).toEqual({ attempts: 2, last_error: null, outcome: "applied" });
    expect((await balance(org.id)) - start).toBe(500);
    const ledger = await db.owner.query("select count(*)::int as n from app_public.credit_ledger where organization_id = $1 and source = 'purchase'", [org.id]);
    expect(ledger.rows[0].n).toBe(1);
  } finally {
    await stopWorker();
    await db.root.query("drop trigger _001_flaky on app_public.invoices");
    await db.root.query("drop function public.flaky_invoices(); drop sequence public.flaky_invoices_seq");
  }
});

test("after the last attempt the event stays unprocessed with its error, for an operator", async () => {
  const { org } = await newOrg("Broken");
  const event = stripeEvent("checkout.session.completed",
    checkoutSessionObject({ id: "cs_test_broken1", customer: "cus_broken1", organizationId: org.id, creditPackageId: "00000000-0000-7000-8000-000000000001" }),
    Math.floor(Date.now() / 1000));
  expect((await deliver(server.url, event)).status).toBe(200);
  // One attempt instead of graphile-worker's 25, so the test does not wait for the backoff.
  await db.owner.query(`update graphile_worker._private_jobs set max_attempts = 1 where ${JOB_OF_EVENT}`, [event.id]);
  await runWorker();
  try {
    await waitFor("the job to give up", async () => {
      const { rows } = await db.owner.query(
        `select attempts, max_attempts, locked_at from graphile_worker._private_jobs where ${JOB_OF_EVENT}`, [event.id]);
      return rows[0] && rows[0].attempts === 1 && rows[0].locked_at === null;
    });
  } finally {
    await stopWorker();
  }
  const { rows } = await db.owner.query("select processed_at, attempts, last_error from app_private.stripe_events where id = $1", [event.id]);
  expect(rows[0].processed_at).toBeNull();
  expect(rows[0].attempts).toBe(1);
  expect(rows[0].last_error).toMatch(/credit package .* does not exist/);
});

test("a batch with one failing event: the others are applied once, only the failing one is retried", async () => {
  const { org, start } = await newOrg("Batch");
  const at = Math.floor(Date.now() / 1000);
  const good = [1, 2].map((i) =>
    stripeEvent("checkout.session.completed",
      checkoutSessionObject({ id: `cs_test_batch${i}`, customer: "cus_batch", organizationId: org.id, creditPackageId: packageId }), at));
  const bad = stripeEvent("checkout.session.completed",
    checkoutSessionObject({ id: "cs_test_batchbad", customer: "cus_batch", organizationId: org.id, creditPackageId: "00000000-0000-7000-8000-000000000002" }), at);
  // Stored together, as the intake stores deliveries that arrive together: one job for the three.
  const { rows: received } = await db.owner.query("select app_private.receive_stripe_events($1::jsonb[]) as new",
    [[good[0], bad, good[1]].map((e) => JSON.stringify(e))]);
  expect(received[0].new).toEqual([true, true, true]);
  const { rows: queued } = await db.owner.query(`select id, payload from graphile_worker._private_jobs where ${JOB_OF_EVENT}`, [bad.id]);
  expect(queued).toHaveLength(1);
  expect(queued[0].payload).toEqual([good[0], bad, good[1]].map((e) => ({ eventId: e.id })));
  await runWorker();
  try {
    await allProcessed(good);
    // graphile-worker keeps the job with only the failed entry, for a later attempt.
    const job = await waitFor("the failed entry to wait for its retry", async () => {
      const { rows } = await db.owner.query("select payload, attempts, last_error, locked_at from graphile_worker._private_jobs where id = $1", [queued[0].id]);
      return rows[0] && rows[0].attempts === 1 && rows[0].locked_at === null ? rows[0] : null;
    });
    expect(job.payload).toEqual([{ eventId: bad.id }]);
    expect(job.last_error).toMatch(/credit package .* does not exist/);
  } finally {
    await stopWorker();
  }
  const { rows } = await db.owner.query(
    "select id, processed_at is not null as processed, attempts, outcome, last_error from app_private.stripe_events where id = any($1) order by id",
    [[...good, bad].map((e) => e.id)]);
  expect(rows).toEqual([
    ...good.map((e) => ({ id: e.id, processed: true, attempts: 1, outcome: "applied", last_error: null })),
    { id: bad.id, processed: false, attempts: 1, outcome: null, last_error: expect.stringMatching(/does not exist/) },
  ].sort((a, b) => (a.id < b.id ? -1 : 1)));
  expect((await balance(org.id)) - start).toBe(2 * 500);
  await db.owner.query("delete from graphile_worker._private_jobs where id = $1", [queued[0].id]);
});

test("a plan change via webhook changes the limits the next request sees", async () => {
  const { owner, org } = await newOrg("Growing");
  const CREATE = `mutation($org: UUID!, $name: String!) { createProject(input: {project: {organizationId: $org, name: $name}}) { project { id } } }`;
  const create = (name: string, user: TestUser = owner) => server.graphql(CREATE, { org: org.id, name }, user);
  const limits = await db.owner.query("select max_projects from app_public.plans where id in ('free', 'pro') order by id");
  const [freeMax] = limits.rows.map((r) => r.max_projects);
  for (let i = 0; i < freeMax; i += 1) expect((await create(`p${i}`)).errors).toBeUndefined();
  const refused = await create("one too many");
  expect(refused.errors?.[0]?.extensions?.code).toBe("PROJECT_LIMIT_REACHED");

  const now = Math.floor(Date.now() / 1000);
  const upgrade = stripeEvent("customer.subscription.created", subscriptionObject({
    id: "sub_growing1", customer: "cus_growing1", status: "active", priceId: "price_pro", created: now,
    periodStart: now, periodEnd: now + 30 * DAY, organizationId: org.id, planId: "pro",
  }), now);
  expect((await deliver(server.url, upgrade)).status).toBe(200);
  await runWorker();
  try {
    await allProcessed([upgrade]);
  } finally {
    await stopWorker();
  }
  expect((await create("now it fits")).errors).toBeUndefined();

  // Seats too: the free plan's seat limit no longer applies.
  const seats = await db.owner.query("select max_seats from app_public.plans where id = 'free'");
  const client = new pg.Client({ connectionString: db.ownerUrl });
  await client.connect();
  try {
    for (let i = 0; i < seats.rows[0].max_seats; i += 1) {
      const user = await createUser(db);
      await client.query("insert into app_public.organization_members (organization_id, user_id) values ($1, $2)", [org.id, user.userId]);
    }
  } finally {
    await client.end();
  }

  // Canceled: back to free; the next project is refused again.
  const cancel = stripeEvent("customer.subscription.deleted", subscriptionObject({
    id: "sub_growing1", customer: "cus_growing1", status: "canceled", priceId: "price_pro", created: now,
    periodStart: now, periodEnd: now + 30 * DAY, organizationId: org.id, canceledAt: now + 60,
  }), now + 60);
  expect((await deliver(server.url, cancel)).status).toBe(200);
  await runWorker();
  try {
    await allProcessed([cancel]);
  } finally {
    await stopWorker();
  }
  expect((await create("over the free limit")).errors?.[0]?.extensions?.code).toBe("PROJECT_LIMIT_REACHED");
});
