// POST /webhooks/stripe: the raw body's signature is checked with the Stripe SDK against
// STRIPE_WEBHOOK_SECRET (with its timestamp tolerance); a verified event is stored and its job
// queued in one transaction (app_private.receive_stripe_events), then 2xx. All the work happens
// in the worker (workers/tasks/stripe_events.ts), so the answer takes milliseconds and a slow
// database write never makes Stripe retry a delivery we already have. Deliveries arriving while
// others are being stored are stored together, one commit and one job for all (intake-batcher.ts).
//
//   400  missing or bad signature, stale timestamp, body that is not a Stripe event (nothing stored)
//   413  body over 1 MB (nothing stored)
//   503  billing not configured (no STRIPE_WEBHOOK_SECRET)
//   200  {"received": true, "duplicate": false|true}

import express, { type Express, type NextFunction, type Request, type Response } from "express";
import type pg from "pg";
import { loadStripeConfig, type StripeConfig } from "../../core/stripe-config.ts";
import { webhookVerifier } from "../stripe/client.ts";
import { rootLogger } from "../../core/logger.ts";
import { IntakeBatcher } from "./intake-batcher.ts";

export type { StripeConfig };

export const STRIPE_WEBHOOK_PATH = "/webhooks/stripe";
export const STRIPE_WEBHOOK_BODY_LIMIT = "1mb";

export interface StripeWebhookOptions {
  /** app_owner connections: receive_stripe_events lives in app_private. */
  pool: pg.Pool;
  config: StripeConfig;
}

function reject(res: Response, status: number, message: string): void {
  res.status(status).json({ error: message });
}

export function stripeWebhookHandler({ pool, config }: StripeWebhookOptions) {
  const intake = new IntakeBatcher({ pool });
  return async function receiveStripeWebhook(req: Request, res: Response, next: NextFunction) {
    if (config.webhookSecret === null) return reject(res, 503, "Stripe webhooks are not configured.");
    const signature = req.headers["stripe-signature"];
    if (typeof signature !== "string" || signature === "") return reject(res, 400, "Missing Stripe-Signature header.");
    if (!Buffer.isBuffer(req.body)) return reject(res, 400, "Expected a raw request body.");
    let event: { id?: unknown; type?: unknown; created?: unknown };
    try {
      event = webhookVerifier.webhooks.constructEvent(
        req.body,
        signature,
        config.webhookSecret,
        config.webhookToleranceSeconds,
      ) as unknown as typeof event;
    } catch (error) {
      // Bad signature, stale timestamp, or a signed body that is not JSON.
      const message = error instanceof Error ? error.message.split("\n")[0] : "Invalid payload.";
      return reject(res, 400, `Webhook rejected: ${message}`);
    }
    if (
      typeof event !== "object" || event === null ||
      typeof event.id !== "string" || !/^evt_[A-Za-z0-9_]+$/.test(event.id) ||
      typeof event.type !== "string" || typeof event.created !== "number"
    ) {
      return reject(res, 400, "Webhook rejected: not a Stripe event.");
    }
    try {
      // The exact bytes Stripe signed, as jsonb (the SDK's parse is only used for the checks).
      const isNew = await intake.receive(req.body.toString("utf8"));
      res.status(200).json({ received: true, duplicate: !isNew });
    } catch (error) {
      // 5xx: Stripe retries the delivery later.
      next(error);
    }
  };
}

/**
 * Mounts the route on the app (before anything that parses bodies for other paths). config
 * defaults to loadStripeConfig() (the environment).
 */
export async function mountStripeWebhook(
  app: Express,
  { pool, config = loadStripeConfig() }: { pool: pg.Pool; config?: StripeConfig },
): Promise<void> {
  const options: StripeWebhookOptions = { pool, config };
  app.post(
    STRIPE_WEBHOOK_PATH,
    express.raw({ type: () => true, limit: STRIPE_WEBHOOK_BODY_LIMIT }),
    stripeWebhookHandler(options),
    (error: unknown, _req: Request, res: Response, next: NextFunction) => {
      const status = (error as { status?: number; type?: string }).status;
      if ((error as { type?: string }).type === "entity.too.large" || status === 413) {
        return reject(res, 413, "Payload too large (limit 1 MB).");
      }
      if (status === 400) return reject(res, 400, "Malformed request body.");
      if (res.headersSent) return next(error);
      rootLogger().error({ err: error }, "stripe webhook: could not store the event");
      return reject(res, 500, "Could not store the event; Stripe will retry.");
    },
  );
}
