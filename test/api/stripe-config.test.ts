// Stripe settings from the environment: defaults, and a clear message for each bad value.

import { ConfigError } from "../../core/config.ts";
import { loadStripeConfig } from "../../core/stripe-config.ts";
import { makeStripeClient, STRIPE_API_VERSION } from "../../server/stripe/client.ts";

const KEYS = { STRIPE_SECRET_KEY: "sk_test_abc123", STRIPE_WEBHOOK_SECRET: "whsec_abc123" };

test("defaults: billing off, 7 grace days, 300 s signature tolerance, Stripe's own host", () => {
  const config = loadStripeConfig({});
  expect(config).toMatchObject({
    secretKey: null,
    webhookSecret: null,
    graceDays: 7,
    webhookToleranceSeconds: 300,
    apiHost: null,
    apiPort: null,
    apiProtocol: null,
    checkoutCancelUrl: "http://localhost:3000/billing",
  });
  expect(makeStripeClient(config)).toBeNull();
});

test("everything set", () => {
  const config = loadStripeConfig({
    ...KEYS,
    STRIPE_API_HOST: "127.0.0.1",
    STRIPE_API_PORT: "12111",
    STRIPE_API_PROTOCOL: "http",
    BILLING_GRACE_DAYS: "0",
    APP_URL: "https://app.example.com/",
    STRIPE_WEBHOOK_TOLERANCE_SECONDS: "60",
  });
  expect(config).toMatchObject({ apiHost: "127.0.0.1", apiPort: 12111, apiProtocol: "http", graceDays: 0, webhookToleranceSeconds: 60 });
  expect(config.portalReturnUrl).toBe("https://app.example.com/billing");
  expect(makeStripeClient(config)).not.toBeNull();
  expect(STRIPE_API_VERSION).toMatch(/^\d{4}-\d{2}-\d{2}\.[a-z]+$/);
});

test.each([
  [{ STRIPE_SECRET_KEY: "pk_test_abc" , STRIPE_WEBHOOK_SECRET: "whsec_abc" }, /STRIPE_SECRET_KEY must look like/],
  [{ STRIPE_SECRET_KEY: "sk_test_abc", STRIPE_WEBHOOK_SECRET: "secret" }, /STRIPE_WEBHOOK_SECRET must look like whsec_/],
  [{ STRIPE_SECRET_KEY: "sk_test_abc" }, /STRIPE_WEBHOOK_SECRET is required when STRIPE_SECRET_KEY is set/],
  [{ STRIPE_WEBHOOK_SECRET: "whsec_abc" }, /STRIPE_SECRET_KEY is required when STRIPE_WEBHOOK_SECRET is set/],
  [{ BILLING_GRACE_DAYS: "-1" }, /BILLING_GRACE_DAYS must be a whole number from 0 to 365/],
  [{ BILLING_GRACE_DAYS: "seven" }, /BILLING_GRACE_DAYS must be a whole number/],
  [{ STRIPE_API_PORT: "70000" }, /STRIPE_API_PORT must be a whole number from 1 to 65535/],
  [{ STRIPE_API_PROTOCOL: "ftp" }, /STRIPE_API_PROTOCOL must be http or https/],
  [{ STRIPE_API_HOST: "http://x" }, /STRIPE_API_HOST must be a host name/],
  [{ NODE_ENV: "production", STRIPE_API_PROTOCOL: "http" }, /not allowed when NODE_ENV=production/],
  [{ APP_URL: "not a url" }, /APP_URL must be an absolute http\(s\) URL/],
])("%j is refused", (env, message) => {
  expect(() => loadStripeConfig(env as Record<string, string>)).toThrow(ConfigError);
  expect(() => loadStripeConfig(env as Record<string, string>)).toThrow(message);
});
