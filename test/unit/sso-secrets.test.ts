// server/identity/sso-secrets.ts and SSO_SECRET_KEY: AES-256-GCM, a fresh IV each time, bound to
// the organization; a wrong key, another organization or a changed byte does not decrypt.
import { randomBytes } from "node:crypto";
import { decryptSsoSecret, encryptSsoSecret } from "../../server/identity/sso-secrets.ts";
import { signInConfig, ssoSecretKey } from "../../core/config.ts";

const ORG = "0190f1e2-0000-7000-8000-000000000001";

test("round trip; never the same bytes twice; no clear text inside", () => {
  const key = randomBytes(32);
  const one = encryptSsoSecret(key, ORG, "s3cr3t-value");
  const two = encryptSsoSecret(key, ORG, "s3cr3t-value");
  expect(one.equals(two)).toBe(false);
  expect(one.includes(Buffer.from("s3cr3t-value"))).toBe(false);
  expect(one.length).toBe(1 + 12 + 16 + "s3cr3t-value".length);
  expect(decryptSsoSecret(key, ORG, one)).toBe("s3cr3t-value");
});

test("another key, another organization, or a changed byte: refused", () => {
  const key = randomBytes(32);
  const stored = encryptSsoSecret(key, ORG, "secret");
  expect(() => decryptSsoSecret(randomBytes(32), ORG, stored)).toThrow();
  expect(() => decryptSsoSecret(key, "0190f1e2-0000-7000-8000-000000000002", stored)).toThrow();
  const changed = Buffer.from(stored);
  changed[changed.length - 1] ^= 1;
  expect(() => decryptSsoSecret(key, ORG, changed)).toThrow();
  expect(() => decryptSsoSecret(key, ORG, Buffer.alloc(10))).toThrow();
});

test("SSO_SECRET_KEY: 32 bytes of base64, else start-up stops; unset is null; 'sso' is no provider name", () => {
  const key = randomBytes(32);
  expect(ssoSecretKey({ SSO_SECRET_KEY: key.toString("base64") })!.equals(key)).toBe(true);
  expect(ssoSecretKey({ SSO_SECRET_KEY: key.toString("base64url") })!.equals(key)).toBe(true);
  expect(ssoSecretKey({})).toBeNull();
  expect(() => ssoSecretKey({ SSO_SECRET_KEY: randomBytes(16).toString("base64") })).toThrow(/SSO_SECRET_KEY must be 32 bytes/);
  expect(() => ssoSecretKey({ SSO_SECRET_KEY: "not base64 at all!" })).toThrow(/SSO_SECRET_KEY/);
  expect(() => signInConfig({ OIDC_PROVIDERS: "sso", OIDC_SSO_ISSUER: "https://x.test", OIDC_SSO_CLIENT_ID: "c", OIDC_SSO_CLIENT_SECRET: "s" })).toThrow(/reserved/);
});
