// Stripe SDK clients: outbound calls (checkout, portal; made in core/stripe-client.ts, which the
// worker shares) and webhook signature checks.

import Stripe from "stripe";
import { STRIPE_API_VERSION } from "../../core/stripe-client.ts";

export { makeStripeClient, STRIPE_API_VERSION } from "../../core/stripe-client.ts";

/** Signature checks need no secret key; this client never makes a request. */
export const webhookVerifier = new Stripe("sk_test_unused", { apiVersion: STRIPE_API_VERSION });
