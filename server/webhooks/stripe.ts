// POST /webhooks/stripe: the raw body's signature is checked with the Stripe SDK against
// STRIPE_WEBHOOK_SECRET (with its timestamp tolerance); a verified event is stored and its job
// queued in one transaction (app_private.receive_stripe_events), then 2xx. All the work happens
// in the worker (workers/tasks/stripe_events.ts), so the answer takes milliseconds and a slow
// database write never makes Stripe retry a delivery we already have. Deliveries arriving while
// others are being stored are stored together, one commit and one job for all (intake-batcher.ts).
//
// Before a byte of the body is read (issue 25, finding 8: 16 senders of 1 MB with a wrong
// signature took another tenant's p50 from 4.9 to 676 ms), the headers alone must show a
// plausible delivery: a Stripe-Signature header of Stripe's form (t=<seconds>,v1=<64 hex>) whose
// timestamp is within the tolerance, and a Content-Length (if given) within the cap. Otherwise
// the answer goes out at once with `Connection: close`, and the connection is closed without
// reading the body. Each address may have only so many deliveries refused per minute; past that
// it is answered 429 before anything else is looked at.
//
//   400  missing, malformed or stale signature header (before reading); bad signature, or a body
//        that is not a Stripe event (after reading); nothing stored
//   413  body over STRIPE_WEBHOOK_MAX_BODY_BYTES (default 512 KB; nothing stored)
//   429  too many refused deliveries from this address (STRIPE_WEBHOOK_MAX_REFUSED_PER_MINUTE)
//   503  billing not configured (no STRIPE_WEBHOOK_SECRET)
//   200  {"received": true, "duplicate": false|true}

import express, { type Express, type NextFunction, type Request, type Response } from "express";
import type pg from "pg";
import { loadStripeConfig, type StripeConfig } from "../../core/stripe-config.ts";
import { stripeWebhookLimits, type StripeWebhookLimits } from "../../core/config.ts";
import { webhookVerifier } from "../stripe/client.ts";
import { rootLogger } from "../../core/logger.ts";
import { normalAddress } from "../client-origin.ts";
import { IntakeBatcher } from "./intake-batcher.ts";

export type { StripeConfig };

export const STRIPE_WEBHOOK_PATH = "/webhooks/stripe";

export interface StripeWebhookOptions {
  /** app_owner connections: receive_stripe_events lives in app_private. */
  pool: pg.Pool;
  config: StripeConfig;
  limits: StripeWebhookLimits;
}

/** Refused deliveries are counted per client address in one-minute windows (bounded memory). */
const MAX_ADDRESSES = 10_000;
const WINDOW_MS = 60_000;

function refusedCounter(maxPerMinute: number) {
  const windows = new Map<string, { start: number; count: number }>();
  const current = (address: string) => {
    const now = Date.now();
    let window = windows.get(address);
    if (!window || now - window.start >= WINDOW_MS) {
      windows.delete(address);
      if (windows.size >= MAX_ADDRESSES) windows.delete(windows.keys().next().value!);
      window = { start: now, count: 0 };
      windows.set(address, window);
    }
    return window;
  };
  return {
    /** Seconds until this address may be heard again, or 0 when it may now. */
    blockedFor(address: string): number {
      const window = windows.get(address);
      if (!window || window.count < maxPerMinute || Date.now() - window.start >= WINDOW_MS) return 0;
      return Math.max(1, Math.ceil((window.start + WINDOW_MS - Date.now()) / 1000));
    },
    count(address: string): void {
      current(address).count += 1;
    },
  };
}

/** Stripe's header: t=<unix seconds>,v1=<hex HMAC-SHA256>[,v1=…][,v0=…]. Null when it is not of that form. */
export function signatureTimestamp(header: string): number | null {
  if (header.length > 2000) return null;
  let timestamp: number | null = null;
  let signatures = 0;
  for (const part of header.split(",")) {
    const at = part.indexOf("=");
    if (at <= 0) return null;
    const key = part.slice(0, at).trim();
    const value = part.slice(at + 1).trim();
    if (key === "t") {
      if (!/^\d{1,12}$/.test(value) || timestamp !== null) return null;
      timestamp = Number(value);
    } else if (key === "v1") {
      if (!/^[0-9a-f]{64}$/i.test(value)) return null;
      signatures += 1;
    }
  }
  return signatures > 0 ? timestamp : null;
}

export function stripeWebhookHandlers({ pool, config, limits }: StripeWebhookOptions) {
  const intake = new IntakeBatcher({ pool });
  const refused = refusedCounter(limits.maxRefusedPerAddressPerMinute);
  const addressOf = (req: Request) => normalAddress(req.ip) ?? "unknown";

  /** Answers without reading the request body, and closes the connection after the answer. */
  const refuseEarly = (req: Request, res: Response, status: number, message: string, count = true) => {
    if (count) refused.count(addressOf(req));
    res.setHeader("Connection", "close");
    res.status(status).json({ error: message });
    // Node reads (and drops) what is left of the body until the answer is flushed and the socket
    // closes; a sender that keeps writing after that gets a reset.
    res.once("finish", () => req.socket.destroySoon?.());
  };

  /** Runs on the headers alone, before express.raw reads the body. */
  function checkHeaders(req: Request, res: Response, next: NextFunction) {
    if (config.webhookSecret === null) return refuseEarly(req, res, 503, "Stripe webhooks are not configured.", false);
    const wait = refused.blockedFor(addressOf(req));
    if (wait > 0) {
      res.setHeader("Connection", "close");
      res.setHeader("Retry-After", String(wait));
      res.status(429).json({ error: `Too many refused deliveries from this address; try again in ${wait} s.` });
      res.once("finish", () => req.socket.destroySoon?.());
      return;
    }
    const signature = req.headers["stripe-signature"];
    if (typeof signature !== "string" || signature === "") return refuseEarly(req, res, 400, "Missing Stripe-Signature header.");
    const timestamp = signatureTimestamp(signature);
    if (timestamp === null) return refuseEarly(req, res, 400, "Webhook rejected: malformed Stripe-Signature header.");
    const age = Math.floor(Date.now() / 1000) - timestamp;
    if (Math.abs(age) > config.webhookToleranceSeconds) {
      return refuseEarly(req, res, 400, "Webhook rejected: Timestamp outside the tolerance zone.");
    }
    const length = req.headers["content-length"];
    if (length !== undefined && !(Number(length) <= limits.maxBodyBytes)) {
      return refuseEarly(req, res, 413, `Payload too large (limit ${limits.maxBodyBytes} bytes).`);
    }
    next();
  }

  async function receive(req: Request, res: Response, next: NextFunction) {
    const signature = req.headers["stripe-signature"] as string;
    if (!Buffer.isBuffer(req.body)) return refuseEarly(req, res, 400, "Expected a raw request body.");
    let event: { id?: unknown; type?: unknown; created?: unknown };
    try {
      event = webhookVerifier.webhooks.constructEvent(
        req.body,
        signature,
        config.webhookSecret!,
        config.webhookToleranceSeconds,
      ) as unknown as typeof event;
    } catch (error) {
      // Bad signature, stale timestamp, or a signed body that is not JSON.
      const message = error instanceof Error ? error.message.split("\n")[0] : "Invalid payload.";
      refused.count(addressOf(req));
      return res.status(400).json({ error: `Webhook rejected: ${message}` });
    }
    if (
      typeof event !== "object" || event === null ||
      typeof event.id !== "string" || !/^evt_[A-Za-z0-9_]+$/.test(event.id) ||
      typeof event.type !== "string" || typeof event.created !== "number"
    ) {
      // Signed with our secret: not an attacker's noise, not counted against the address.
      return res.status(400).json({ error: "Webhook rejected: not a Stripe event." });
    }
    try {
      // The exact bytes Stripe signed, as jsonb (the SDK's parse is only used for the checks).
      const isNew = await intake.receive(req.body.toString("utf8"));
      res.status(200).json({ received: true, duplicate: !isNew });
    } catch (error) {
      // 5xx: Stripe retries the delivery later.
      next(error);
    }
  }

  function errors(error: unknown, req: Request, res: Response, next: NextFunction) {
    const status = (error as { status?: number; type?: string }).status;
    if (res.headersSent) return next(error);
    if ((error as { type?: string }).type === "entity.too.large" || status === 413) {
      return refuseEarly(req, res, 413, `Payload too large (limit ${limits.maxBodyBytes} bytes).`);
    }
    if (status === 400) return refuseEarly(req, res, 400, "Malformed request body.");
    rootLogger().error({ err: error }, "stripe webhook: could not store the event");
    return res.status(500).json({ error: "Could not store the event; Stripe will retry." });
  }

  return { checkHeaders, receive, errors };
}

/**
 * Mounts the route on the app (before anything that parses bodies for other paths). config
 * defaults to loadStripeConfig(), limits to stripeWebhookLimits() (the environment).
 */
export async function mountStripeWebhook(
  app: Express,
  { pool, config = loadStripeConfig(), limits }: { pool: pg.Pool; config?: StripeConfig; limits?: Partial<StripeWebhookLimits> },
): Promise<void> {
  const options: StripeWebhookOptions = { pool, config, limits: { ...stripeWebhookLimits(), ...limits } };
  const handlers = stripeWebhookHandlers(options);
  app.post(
    STRIPE_WEBHOOK_PATH,
    handlers.checkHeaders,
    express.raw({ type: () => true, limit: options.limits.maxBodyBytes }),
    handlers.receive,
    handlers.errors,
  );
}
