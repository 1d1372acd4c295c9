// Stripe configuration, from environment variables, validated once at start-up (the same way
// as core/config.ts; a file of its own so billing's settings read together). Without STRIPE_SECRET_KEY and
// STRIPE_WEBHOOK_SECRET billing is off: the webhook answers 503 and the checkout mutations
// raise BILLING_NOT_CONFIGURED; everything else works.

import { ConfigError, appUrl, httpUrl } from "./config.ts";

export interface StripeConfig {
  /** sk_… or rk_…; null: outbound calls are off. */
  secretKey: string | null;
  /** whsec_…; null: the webhook answers 503. */
  webhookSecret: string | null;
  /** Seconds a signature's timestamp may be old (Stripe's default: 300). */
  webhookToleranceSeconds: number;
  /** Where the Stripe client sends requests (tests point it at a local fake). */
  apiHost: string | null;
  apiPort: number | null;
  apiProtocol: "http" | "https" | null;
  /** Where Checkout and the billing portal send the user back to. */
  checkoutSuccessUrl: string;
  checkoutCancelUrl: string;
  portalReturnUrl: string;
  /** Days a past_due subscription keeps its plan. */
  graceDays: number;
}

type Env = Record<string, string | undefined>;

function read(env: Env, name: string): string | null {
  const value = env[name];
  return value === undefined || value.trim() === "" ? null : value.trim();
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const value = read(env, name);
  if (value === null) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new ConfigError(`${name} must be a whole number from ${min} to ${max}, got "${value}"`);
  }
  return Number(value);
}

export function loadStripeConfig(env: Env = process.env): StripeConfig {
  const isProduction = (read(env, "NODE_ENV") ?? "development") === "production";
  const secretKey = read(env, "STRIPE_SECRET_KEY");
  if (secretKey !== null && !/^(sk|rk)_(test|live)_[A-Za-z0-9]+$/.test(secretKey)) {
    throw new ConfigError("STRIPE_SECRET_KEY must look like sk_test_…, sk_live_… or rk_…");
  }
  const webhookSecret = read(env, "STRIPE_WEBHOOK_SECRET");
  if (webhookSecret !== null && !/^whsec_[A-Za-z0-9+/=]+$/.test(webhookSecret)) {
    throw new ConfigError("STRIPE_WEBHOOK_SECRET must look like whsec_… (from the dashboard or `stripe listen`)");
  }
  if ((secretKey === null) !== (webhookSecret === null)) {
    throw new ConfigError(
      secretKey === null
        ? "STRIPE_SECRET_KEY is required when STRIPE_WEBHOOK_SECRET is set (set both, or neither)"
        : "STRIPE_WEBHOOK_SECRET is required when STRIPE_SECRET_KEY is set (set both, or neither)",
    );
  }
  const apiHost = read(env, "STRIPE_API_HOST");
  if (apiHost !== null && !/^[A-Za-z0-9.-]+$/.test(apiHost)) {
    throw new ConfigError(`STRIPE_API_HOST must be a host name without scheme or port, got "${apiHost}"`);
  }
  const apiPortRaw = read(env, "STRIPE_API_PORT");
  const apiPort = apiPortRaw === null ? null : integer(env, "STRIPE_API_PORT", 443, 1, 65535);
  const apiProtocol = read(env, "STRIPE_API_PROTOCOL");
  if (apiProtocol !== null && apiProtocol !== "http" && apiProtocol !== "https") {
    throw new ConfigError(`STRIPE_API_PROTOCOL must be http or https, got "${apiProtocol}"`);
  }
  if (isProduction && apiProtocol === "http") {
    throw new ConfigError("STRIPE_API_PROTOCOL=http is not allowed when NODE_ENV=production");
  }

  const base = appUrl(env);
  return {
    secretKey,
    webhookSecret,
    webhookToleranceSeconds: integer(env, "STRIPE_WEBHOOK_TOLERANCE_SECONDS", 300, 1, 3600),
    apiHost,
    apiPort,
    apiProtocol: apiProtocol as StripeConfig["apiProtocol"],
    checkoutSuccessUrl: httpUrl(env, "STRIPE_CHECKOUT_SUCCESS_URL", `${base}/billing/success?session_id={CHECKOUT_SESSION_ID}`),
    checkoutCancelUrl: httpUrl(env, "STRIPE_CHECKOUT_CANCEL_URL", `${base}/billing`),
    portalReturnUrl: httpUrl(env, "STRIPE_PORTAL_RETURN_URL", `${base}/billing`),
    graceDays: integer(env, "BILLING_GRACE_DAYS", 7, 0, 365),
  };
}
