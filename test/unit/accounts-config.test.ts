// Account settings from the environment (core/config.ts accountsConfig) and the extra error
// extensions a business error may carry (server/errors.ts), e.g. retryAfter.

import { GraphQLError } from "postgraphile/graphql";
import { accountsConfig, ConfigError } from "../../core/config.ts";
import { extraExtensions, maskError } from "../../server/errors.ts";

test("defaults: 3 days, 1 hour, 1 day, 8 hours idle, invitations and API keys need a verified address, no proxy trusted", () => {
  const c = accountsConfig({});
  expect(c).toMatchObject({
    verificationTokenTtlSeconds: 259200,
    resetTokenTtlSeconds: 3600,
    emailChangeTokenTtlSeconds: 86400,
    sessionIdleTimeoutSeconds: 28800,
    verifiedEmailRequiredFor: ["invitations", "api_keys"],
    trustProxy: false,
  });
  expect(c.attemptLimits.authenticate).toEqual({
    email: { max: 10, seconds: 900, maxDelay: 30 },
    pair: { max: 10, seconds: 900 },
    address: { max: 50, seconds: 900 },
  });
  expect(c.attemptLimits.forgot_password).toEqual({ email: { max: 1, seconds: 600 }, address: { max: 20, seconds: 3600 } });
});

test("overrides and refusals", () => {
  const c = accountsConfig({ RATE_LIMIT_AUTHENTICATE_EMAIL: "3/60", RATE_LIMIT_REGISTER_ADDRESS: "off", VERIFIED_EMAIL_REQUIRED_FOR: "none", TRUST_PROXY: "2" });
  expect(c.attemptLimits.authenticate.email).toEqual({ max: 3, seconds: 60, maxDelay: 30 });
  expect(accountsConfig({ RATE_LIMIT_AUTHENTICATE_MAX_DELAY_SECONDS: "60" }).attemptLimits.authenticate.email.maxDelay).toBe(60);
  expect(() => accountsConfig({ RATE_LIMIT_AUTHENTICATE_MAX_DELAY_SECONDS: "0" })).toThrow(/RATE_LIMIT_AUTHENTICATE_MAX_DELAY_SECONDS/);
  expect(c.attemptLimits.register.address).toBeUndefined();
  expect(accountsConfig({ RATE_LIMIT_AUTHENTICATE_PAIR: "4/120" }).attemptLimits.authenticate.pair).toEqual({ max: 4, seconds: 120 });
  expect(c.verifiedEmailRequiredFor).toEqual([]);
  expect(c.trustProxy).toBe(2);
  expect(accountsConfig({ TRUST_PROXY: "10.0.0.0/8, loopback" }).trustProxy).toEqual(["10.0.0.0/8", "loopback"]);
  expect(() => accountsConfig({ RATE_LIMIT_AUTHENTICATE_EMAIL: "lots" })).toThrow(ConfigError);
  expect(() => accountsConfig({ RATE_LIMIT_AUTHENTICATE_EMAIL: "0/60" })).toThrow(/RATE_LIMIT_AUTHENTICATE_EMAIL/);
  // A name that sets nothing is refused, so nobody believes a limit is in force that is not.
  expect(() => accountsConfig({ RATE_LIMIT_REGISTER_EMAIL: "5/3600" })).toThrow(/RATE_LIMIT_REGISTER_EMAIL is not a setting \(renamed RATE_LIMIT_REGISTER_PAIR/);
  expect(() => accountsConfig({ RATE_LIMIT_AUTHENTICATE_ADRESS: "5/60" })).toThrow(/RATE_LIMIT_AUTHENTICATE_ADRESS is not a setting/);
  expect(() => accountsConfig({ VERIFIED_EMAIL_REQUIRED_FOR: "invitations,everything" })).toThrow(/VERIFIED_EMAIL_REQUIRED_FOR/);
  expect(() => accountsConfig({ TRUST_PROXY: "example.com" })).toThrow(/TRUST_PROXY/);
  expect(() => accountsConfig({ SESSION_IDLE_TIMEOUT_SECONDS: "5" })).toThrow(/SESSION_IDLE_TIMEOUT_SECONDS/);
});

test("extra extensions from HINT: flat primitives only, never the code", () => {
  expect(extraExtensions('{"retryAfter": 42}')).toEqual({ retryAfter: 42 });
  expect(extraExtensions('{"code": "X", "nested": {"a": 1}, "ok": true, "bad key!": 1}')).toEqual({ ok: true });
  expect(extraExtensions("not json")).toEqual({});
  expect(extraExtensions(undefined)).toEqual({});
  const original = Object.assign(new Error("Too many attempts; try again later."), {
    code: "TB000",
    detail: "TOO_MANY_ATTEMPTS",
    hint: '{"retryAfter": 17}',
  });
  const masked = maskError(new GraphQLError("wrapped", { originalError: original }));
  expect(masked.extensions).toEqual({ retryAfter: 17, code: "TOO_MANY_ATTEMPTS" });
});
