// Stripe for tests, without the network: a local node:http server that answers the few API
// calls the server makes (as Stripe would) and records them, and Stripe events in Stripe's own
// shapes (API version STRIPE_API_VERSION) signed with the SDK's test-header helper.

import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { randomBytes } from "node:crypto";
import Stripe from "stripe";
import type { StripeConfig } from "../../core/stripe-config.ts";
import { STRIPE_API_VERSION } from "../../server/stripe/client.ts";

export const TEST_WEBHOOK_SECRET = "whsec_testsecret0123456789abcdef";

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  /** The form body, flattened as Stripe encodes it: {"metadata[organization_id]": "…"}. */
  form: Record<string, string>;
}

export interface FakeStripe {
  port: number;
  requests: RecordedRequest[];
  /** PaymentIntents created, by id, as Stripe holds them (for building webhook events). */
  paymentIntents: Map<string, Record<string, any>>;
  /** The next n requests answer 500 (Stripe is down). */
  failNext(n: number): void;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

export async function startFakeStripe(): Promise<FakeStripe> {
  const requests: RecordedRequest[] = [];
  const byIdempotencyKey = new Map<string, { status: number; body: unknown }>();
  const paymentIntents = new Map<string, Record<string, any>>();
  const setupIntents = new Map<string, Record<string, any>>();
  const customers = new Map<string, Record<string, any>>();
  let failures = 0;
  let n = 0;
  const server: Server = createServer(async (req, res) => {
    const raw = await readBody(req);
    const form = Object.fromEntries(new URLSearchParams(raw));
    const path = (req.url ?? "").split("?")[0];
    requests.push({ method: req.method ?? "", path, headers: req.headers, form });
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json", "request-id": `req_${n}` });
      res.end(JSON.stringify(body));
    };
    if (failures > 0) {
      failures -= 1;
      return send(500, { error: { type: "api_error", message: "Fake Stripe is down." } });
    }
    const key = req.headers["idempotency-key"];
    if (typeof key === "string" && byIdempotencyKey.has(`${path}:${key}`)) {
      // Stripe replays the first answer to a key, errors included.
      const first = byIdempotencyKey.get(`${path}:${key}`)!;
      return send(first.status, first.body);
    }
    n += 1;
    const created = Math.floor(Date.now() / 1000);
    const metadataOf = () =>
      Object.fromEntries(Object.entries(form).filter(([k]) => k.startsWith("metadata[")).map(([k, v]) => [k.slice(9, -1), v]));
    let body: Record<string, unknown>;
    let status = 200;
    const retrieve = (map: Map<string, Record<string, any>>, prefix: string) => {
      const found = map.get(path.slice(prefix.length));
      return found ?? null;
    };
    if (req.method === "POST" && path === "/v1/customers") {
      body = { id: `cus_fake${n}${randomBytes(3).toString("hex")}`, object: "customer", created, name: form.name ?? null, email: form.email ?? null, metadata: metadataOf() };
      customers.set(body.id as string, body);
    } else if (req.method === "GET" && path.startsWith("/v1/customers/")) {
      const found = retrieve(customers, "/v1/customers/");
      if (!found) return send(404, { error: { type: "invalid_request_error", code: "resource_missing", message: "No such customer" } });
      body = found;
    } else if (req.method === "POST" && path === "/v1/setup_intents") {
      body = { id: `seti_fake${n}${randomBytes(3).toString("hex")}`, object: "setup_intent", created, customer: form.customer ?? null, usage: form.usage ?? "off_session", status: "requires_payment_method", payment_method: null, metadata: metadataOf() };
      setupIntents.set(body.id as string, body);
    } else if (req.method === "GET" && path.startsWith("/v1/setup_intents/")) {
      const found = retrieve(setupIntents, "/v1/setup_intents/");
      if (!found) return send(404, { error: { type: "invalid_request_error", code: "resource_missing", message: "No such setupintent" } });
      body = found;
    } else if (req.method === "GET" && path.startsWith("/v1/payment_methods/")) {
      const id = path.slice("/v1/payment_methods/".length);
      body = { id, object: "payment_method", type: "card", card: { brand: "visa", last4: id.includes("declined") ? "0002" : "4242" }, customer: null };
    } else if (req.method === "GET" && path.startsWith("/v1/payment_intents/")) {
      const found = retrieve(paymentIntents, "/v1/payment_intents/");
      if (!found) return send(404, { error: { type: "invalid_request_error", code: "resource_missing", message: "No such payment_intent" } });
      body = found;
    } else if (req.method === "POST" && path === "/v1/payment_intents") {
      // As Stripe's test cards behave: a payment method whose id names a decline code
      // (pm_card_declined_<code>) is declined with it, pm_card_authentication_required needs the
      // cardholder; any other succeeds at once.
      const amount = Number(form.amount);
      if (!Number.isInteger(amount) || amount < 1 || !/^[a-z]{3}$/.test(form.currency ?? "") || !form.customer || !form.payment_method) {
        return send(400, { error: { type: "invalid_request_error", message: "Missing or invalid amount, currency, customer or payment_method." } });
      }
      const id = `pi_fake${n}${randomBytes(4).toString("hex")}`;
      const pm = form.payment_method;
      const declined = /^pm_card_declined_?(.*)$/.exec(pm);
      const intent: Record<string, any> = {
        id, object: "payment_intent", created, amount, amount_received: 0, currency: form.currency, customer: form.customer,
        payment_method: pm, off_session: form.off_session === "true", confirmation_method: "automatic",
        status: "succeeded", last_payment_error: null, next_action: null, metadata: metadataOf(), livemode: false,
      };
      if (form.confirm !== "true") {
        intent.status = "requires_confirmation";
      } else if (declined) {
        const declineCode = declined[1] || "generic_decline";
        intent.status = "requires_payment_method";
        intent.last_payment_error = { type: "card_error", code: "card_declined", decline_code: declineCode, message: "Your card was declined." };
        status = 402;
      } else if (pm === "pm_card_authentication_required") {
        intent.status = "requires_action";
        intent.next_action = { type: "use_stripe_sdk", use_stripe_sdk: {} };
        intent.last_payment_error = { type: "card_error", code: "authentication_required", message: "Your card was declined. This transaction requires authentication." };
        status = 402;
      } else {
        intent.amount_received = amount;
      }
      paymentIntents.set(id, intent);
      body = status === 402
        ? { error: { ...intent.last_payment_error, payment_intent: intent, payment_method: { id: pm, object: "payment_method" } } }
        : intent;
    } else if (req.method === "POST" && path === "/v1/checkout/sessions") {
      const id = `cs_test_fake${n}${randomBytes(4).toString("hex")}`;
      body = { id, object: "checkout.session", created, mode: form.mode, customer: form.customer, url: `https://checkout.stripe.com/c/pay/${id}`, metadata: metadataOf() };
    } else if (req.method === "POST" && path === "/v1/billing_portal/sessions") {
      const id = `bps_fake${n}`;
      body = { id, object: "billing_portal.session", created, customer: form.customer, return_url: form.return_url, url: `https://billing.stripe.com/p/session/test_${id}` };
    } else {
      return send(404, { error: { type: "invalid_request_error", message: `Unrecognized request URL (${req.method}: ${path})` } });
    }
    if (typeof key === "string") byIdempotencyKey.set(`${path}:${key}`, { status, body });
    send(status, body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    paymentIntents,
    failNext(count) {
      failures = count;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      }),
  };
}

export function stripeConfigFor(fake: FakeStripe | null, overrides: Partial<StripeConfig> = {}): StripeConfig {
  return {
    secretKey: "sk_test_fake123",
    webhookSecret: TEST_WEBHOOK_SECRET,
    webhookToleranceSeconds: 300,
    apiHost: "127.0.0.1",
    apiPort: fake?.port ?? 9,
    apiProtocol: "http",
    checkoutSuccessUrl: "http://localhost:3000/billing/success?session_id={CHECKOUT_SESSION_ID}",
    checkoutCancelUrl: "http://localhost:3000/billing",
    portalReturnUrl: "http://localhost:3000/billing",
    graceDays: 7,
    ...overrides,
  };
}

// ------------------------------------------------------------------------------------------------
// Events
// ------------------------------------------------------------------------------------------------

const stripe = new Stripe("sk_test_unused", { apiVersion: STRIPE_API_VERSION });

export interface StripeEvent {
  id: string;
  object: "event";
  api_version: string;
  created: number;
  livemode: false;
  pending_webhooks: number;
  request: { id: string | null; idempotency_key: string | null };
  type: string;
  data: { object: Record<string, any>; previous_attributes?: Record<string, any> };
}

let eventCounter = 0;
export function eventId(): string {
  eventCounter += 1;
  return `evt_test${eventCounter}${randomBytes(6).toString("hex")}`;
}

export function stripeEvent(type: string, object: Record<string, any>, created: number): StripeEvent {
  return {
    id: eventId(),
    object: "event",
    api_version: STRIPE_API_VERSION,
    created,
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type,
    data: { object },
  };
}

export const T0 = 1_790_000_000; // a fixed Stripe time (2026-09-21) so tests are reproducible

/** A subscription as API version 2025-03-31+ shapes it (period on the item). */
export function subscriptionObject(options: {
  id: string;
  customer: string;
  status: string;
  priceId: string;
  created: number;
  periodStart: number;
  periodEnd: number;
  organizationId?: string;
  planId?: string;
  cancelAtPeriodEnd?: boolean;
  canceledAt?: number | null;
  trialEnd?: number | null;
  interval?: string;
}): Record<string, any> {
  return {
    id: options.id,
    object: "subscription",
    customer: options.customer,
    status: options.status,
    created: options.created,
    start_date: options.created,
    cancel_at_period_end: options.cancelAtPeriodEnd ?? false,
    canceled_at: options.canceledAt ?? null,
    ended_at: options.status === "canceled" ? (options.canceledAt ?? null) : null,
    trial_end: options.trialEnd ?? null,
    currency: "usd",
    livemode: false,
    metadata: options.organizationId ? { organization_id: options.organizationId, plan_id: options.planId ?? "" } : {},
    items: {
      object: "list",
      data: [
        {
          id: `si_${options.id.slice(4)}`,
          object: "subscription_item",
          quantity: 1,
          current_period_start: options.periodStart,
          current_period_end: options.periodEnd,
          price: {
            id: options.priceId,
            object: "price",
            type: "recurring",
            currency: "usd",
            unit_amount: 2900,
            recurring: { interval: options.interval ?? "month", interval_count: 1 },
          },
        },
      ],
      has_more: false,
    },
  };
}

/** An invoice; `legacy` puts subscription and price where API versions before 2025-03-31 did. */
export function invoiceObject(options: {
  id: string;
  customer: string;
  subscription: string;
  priceId: string;
  status: "paid" | "open";
  amount: number;
  periodStart: number;
  periodEnd: number;
  organizationId?: string;
  legacy?: boolean;
}): Record<string, any> {
  const line: Record<string, any> = {
    id: `il_${options.id.slice(3)}`,
    object: "line_item",
    amount: options.amount,
    currency: "usd",
    period: { start: options.periodStart, end: options.periodEnd },
    quantity: 1,
  };
  const invoice: Record<string, any> = {
    id: options.id,
    object: "invoice",
    customer: options.customer,
    status: options.status,
    currency: "usd",
    amount_due: options.amount,
    amount_paid: options.status === "paid" ? options.amount : 0,
    amount_remaining: options.status === "paid" ? 0 : options.amount,
    billing_reason: "subscription_cycle",
    hosted_invoice_url: `https://invoice.stripe.com/i/${options.id}`,
    // The invoice's own period is the previous one for renewals (the line has the real one).
    period_start: options.periodStart - 1,
    period_end: options.periodStart,
    status_transitions: { paid_at: options.status === "paid" ? options.periodStart + 60 : null },
    lines: { object: "list", data: [line], has_more: false },
  };
  if (options.legacy) {
    invoice.subscription = options.subscription;
    invoice.subscription_details = { metadata: options.organizationId ? { organization_id: options.organizationId } : {} };
    line.price = { id: options.priceId, object: "price" };
    line.plan = { id: options.priceId, object: "plan" };
  } else {
    invoice.parent = {
      type: "subscription_details",
      quote_details: null,
      subscription_details: {
        subscription: options.subscription,
        metadata: options.organizationId ? { organization_id: options.organizationId } : {},
      },
    };
    line.pricing = { type: "price_details", price_details: { price: options.priceId, product: "prod_test" } };
  }
  return invoice;
}

export function checkoutSessionObject(options: {
  id: string;
  customer: string;
  organizationId?: string;
  creditPackageId?: string;
  mode?: "payment" | "subscription";
  paymentStatus?: "paid" | "unpaid";
  amountTotal?: number;
}): Record<string, any> {
  return {
    id: options.id,
    object: "checkout.session",
    mode: options.mode ?? "payment",
    status: "complete",
    payment_status: options.paymentStatus ?? "paid",
    customer: options.customer,
    client_reference_id: options.organizationId ?? null,
    currency: "usd",
    amount_subtotal: options.amountTotal ?? 1000,
    amount_total: options.amountTotal ?? 1000,
    metadata: {
      ...(options.organizationId ? { organization_id: options.organizationId } : {}),
      ...(options.creditPackageId ? { credit_package_id: options.creditPackageId } : {}),
    },
  };
}

// ------------------------------------------------------------------------------------------------
// Delivery
// ------------------------------------------------------------------------------------------------

export function signedHeader(payload: string, options: { secret?: string; timestamp?: number } = {}): string {
  return stripe.webhooks.generateTestHeaderString({
    payload,
    secret: options.secret ?? TEST_WEBHOOK_SECRET,
    ...(options.timestamp !== undefined ? { timestamp: options.timestamp } : {}),
  });
}

export async function deliver(
  baseUrl: string,
  event: StripeEvent | string,
  options: { secret?: string; timestamp?: number; signature?: string | null } = {},
): Promise<{ status: number; body: any }> {
  const payload = typeof event === "string" ? event : JSON.stringify(event);
  const headers: Record<string, string> = { "content-type": "application/json" };
  const signature = options.signature === undefined ? signedHeader(payload, options) : options.signature;
  if (signature !== null) headers["stripe-signature"] = signature;
  const response = await fetch(`${baseUrl}/webhooks/stripe`, { method: "POST", headers, body: payload });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: response.status, body };
}
