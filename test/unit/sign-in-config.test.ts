// Sign-in providers from the environment (core/config.ts signInConfig): each mistake stops
// start-up with a line naming the variable.

import { ConfigError, signInConfig } from "../../core/config.ts";

const google = {
  OIDC_PROVIDERS: "google",
  OIDC_GOOGLE_ISSUER: "https://accounts.google.com",
  OIDC_GOOGLE_CLIENT_ID: "id",
  OIDC_GOOGLE_CLIENT_SECRET: "secret",
};

test("no provider by default; APP_URL and PUBLIC_URL have their defaults", () => {
  expect(signInConfig({})).toEqual({ appUrl: "http://localhost:3000", publicUrl: "http://localhost:5678", providers: [], allowHttp: true, ssoSecretKey: null });
});

test("an OIDC provider with its defaults, and GitHub with both its variables", () => {
  const config = signInConfig({ ...google, GITHUB_CLIENT_ID: "gh", GITHUB_CLIENT_SECRET: "ghs", PUBLIC_URL: "https://api.example.com/" });
  expect(config.publicUrl).toBe("https://api.example.com");
  expect(config.providers.map((p) => [p.name, p.kind, p.issuer, p.scopes, p.idTokenAlg])).toEqual([
    ["google", "oidc", "https://accounts.google.com", "openid email profile", "RS256"],
    ["github", "github", "https://github.com", "read:user user:email", ""],
  ]);
  expect(config.providers[1]).toMatchObject({ oauthUrl: "https://github.com", apiUrl: "https://api.github.com" });
});

test.each([
  [{ ...google, OIDC_GOOGLE_CLIENT_SECRET: undefined }, /OIDC_GOOGLE_CLIENT_SECRET is required/],
  [{ ...google, OIDC_GOOGLE_ISSUER: undefined }, /OIDC_GOOGLE_ISSUER is required/],
  [{ ...google, OIDC_GOOGLE_ISSUER: "not a url" }, /OIDC_GOOGLE_ISSUER must be an absolute https URL/],
  [{ ...google, OIDC_GOOGLE_ISSUER: "https://accounts.google.com?x=1" }, /plain URL/],
  [{ ...google, OIDC_GOOGLE_ID_TOKEN_ALG: "HS256" }, /none and HMAC are refused/],
  [{ ...google, OIDC_GOOGLE_ID_TOKEN_ALG: "none" }, /OIDC_GOOGLE_ID_TOKEN_ALG must be one of/],
  [{ ...google, OIDC_GOOGLE_SCOPES: "email" }, /must include openid/],
  [{ ...google, OIDC_GOGLE_ISSUER: "https://x.example" }, /OIDC_GOGLE_ISSUER is not a setting: OIDC_PROVIDERS names google/],
  [{ OIDC_PROVIDERS: "Google" }, /lowercase names/],
  [{ OIDC_PROVIDERS: "github" }, /GITHUB_CLIENT_ID/],
  [{ ...google, OIDC_PROVIDERS: "google,google" }, /twice/],
  [{ GITHUB_CLIENT_ID: "gh" }, /GITHUB_CLIENT_SECRET is required/],
  [{ ...google, NODE_ENV: "production", OIDC_GOOGLE_ISSUER: "http://accounts.example", PUBLIC_URL: "https://api.example.com" }, /must be an https URL, got/],
  [{ ...google, NODE_ENV: "production" }, /PUBLIC_URL is required/],
])("refused: %j", (env, message) => {
  expect(() => signInConfig(env as Record<string, string | undefined>)).toThrow(ConfigError);
  expect(() => signInConfig(env as Record<string, string | undefined>)).toThrow(message);
});

test("an http issuer is accepted outside production (development and tests)", () => {
  expect(signInConfig({ ...google, OIDC_GOOGLE_ISSUER: "http://127.0.0.1:9999" }).providers[0].issuer).toBe("http://127.0.0.1:9999");
});
