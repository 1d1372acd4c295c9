// The Stripe SDK client for outbound calls, shared by the server (checkout, portal) and the worker
// (auto top-up's off-session PaymentIntents). server/stripe/client.ts re-exports it.

import Stripe from "stripe";
import type { StripeConfig } from "./stripe-config.ts";

/**
 * The Stripe API version this code reads and writes (the one stripe@23 was generated for).
 * Webhook endpoints must be created with the same version: payload shapes differ between
 * versions (e.g. `invoice.subscription` moved to `invoice.parent.subscription_details`). The
 * SQL accepts both the old and the new places for the fields it reads.
 */
export const STRIPE_API_VERSION = "2026-10-28.endive" as const;

/** A Stripe client for outbound calls, or null when billing is off. */
export function makeStripeClient(config: StripeConfig): Stripe | null {
  if (config.secretKey === null) return null;
  return new Stripe(config.secretKey, {
    apiVersion: STRIPE_API_VERSION,
    ...(config.apiHost !== null ? { host: config.apiHost } : {}),
    ...(config.apiPort !== null ? { port: config.apiPort } : {}),
    ...(config.apiProtocol !== null ? { protocol: config.apiProtocol } : {}),
    maxNetworkRetries: 2,
    timeout: 10_000,
    telemetry: false,
    appInfo: { name: "tenantbase" },
  });
}
