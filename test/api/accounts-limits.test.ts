// Brute-force limits over real HTTP, counted in PostgreSQL: N wrong passwords, then the right one
// refused with TOO_MANY_ATTEMPTS and retryAfter until the window passes (moved back in the
// database, not waited for); per client address; aliases counted one by one; concurrent attempts
// from many connections; X-Forwarded-For believed only with TRUST_PROXY.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { codes, register, uniqueEmail } from "../helpers/accounts.ts";
import { accountsConfig } from "../../core/config.ts";

let db: TestDatabase;
let server: TestServer;
beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db);
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

const AUTH = `mutation($e: String!, $p: String!) { authenticate(input: {email: $e, password: $p}) { jwtToken } }`;

async function graphqlFrom(target: TestServer, query: string, variables: Record<string, unknown>, forwardedFor?: string) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (forwardedFor) headers["x-forwarded-for"] = forwardedFor;
  const response = await fetch(`${target.url}/graphql`, { method: "POST", headers, body: JSON.stringify({ query, variables }) });
  return (await response.json()) as { data?: any; errors?: { extensions?: { code?: string; retryAfter?: number } }[] };
}

async function setLimits(limits: object) {
  await db.owner.query("update app_private.account_settings set attempt_limits = $1", [JSON.stringify(limits)]);
}
async function clearCounters() {
  await db.owner.query("delete from app_private.attempt_counters");
}
afterEach(clearCounters);

test("10 wrong passwords, then the right one is refused with retryAfter until the window passes", async () => {
  await setLimits(accountsConfig({}).attemptLimits); // the defaults: 10 per email per 15 minutes
  const ada = await register(server);
  for (let i = 0; i < 10; i++) expect(codes(await server.graphql(AUTH, { e: ada.email, p: `wrong ${i}` }))).toEqual(["INVALID_CREDENTIALS"]);
  const locked = await server.graphql(AUTH, { e: ada.email, p: ada.password });
  expect(codes(locked)).toEqual(["TOO_MANY_ATTEMPTS"]);
  expect(locked.data?.authenticate ?? null).toBeNull();
  const retryAfter = locked.errors![0].extensions!.retryAfter as number;
  expect(Number.isInteger(retryAfter)).toBe(true);
  expect(retryAfter).toBeGreaterThan(0);
  expect(retryAfter).toBeLessThanOrEqual(900);
  // the email is locked whatever its case; another account is not
  expect(codes(await server.graphql(AUTH, { e: ada.email.toUpperCase(), p: ada.password }))).toEqual(["TOO_MANY_ATTEMPTS"]);
  const bob = await register(server);
  expect((await server.graphql(AUTH, { e: bob.email, p: bob.password })).data.authenticate.jwtToken).toBeTruthy();

  // 10 seconds before the window ends: still locked, retryAfter about 10
  await db.owner.query(
    "update app_private.attempt_counters set window_started_at = now() - interval '890 seconds' where action = 'authenticate' and scope = 'email'",
  );
  const late = await server.graphql(AUTH, { e: ada.email, p: ada.password });
  expect(codes(late)).toEqual(["TOO_MANY_ATTEMPTS"]);
  expect(late.errors![0].extensions!.retryAfter).toBeLessThanOrEqual(10);
  // the window has passed: the right password works, and success forgets the failures
  await db.owner.query(
    "update app_private.attempt_counters set window_started_at = now() - interval '901 seconds' where action = 'authenticate' and scope = 'email'",
  );
  expect((await server.graphql(AUTH, { e: ada.email, p: ada.password })).data.authenticate.jwtToken).toBeTruthy();
  const { rows } = await db.owner.query("select count(*)::int as n from app_private.attempt_counters where action = 'authenticate' and scope = 'email'");
  expect(rows[0].n).toBe(0);
});

test("aliases count one by one: 30 aliased guesses in one request get 5 answers and 25 TOO_MANY_ATTEMPTS", async () => {
  await setLimits({ authenticate: { email: { max: 5, seconds: 600 } } });
  const cy = await register(server);
  const guesses = Array.from({ length: 30 }, (_, i) => (i === 29 ? cy.password : `guess ${i}`));
  const query = `mutation { ${guesses
    .map((g, i) => `g${i}: authenticate(input: {email: ${JSON.stringify(cy.email)}, password: ${JSON.stringify(g)}}) { jwtToken }`)
    .join(" ")} }`;
  const r = await server.graphql(query);
  const found = codes(r);
  expect(found.filter((c) => c === "INVALID_CREDENTIALS")).toHaveLength(5);
  expect(found.filter((c) => c === "TOO_MANY_ATTEMPTS")).toHaveLength(25);
  expect(r.data.g29).toBeNull(); // the right guess came too late
});

test("40 concurrent attempts from 40 connections: exactly the limit get through to the password check", async () => {
  await setLimits({ authenticate: { email: { max: 7, seconds: 600 } } });
  const dee = await register(server);
  const results = await Promise.all(Array.from({ length: 40 }, () => server.graphql(AUTH, { e: dee.email, p: "wrong password" })));
  const found = results.flatMap(codes);
  expect(found.filter((c) => c === "INVALID_CREDENTIALS")).toHaveLength(7);
  expect(found.filter((c) => c === "TOO_MANY_ATTEMPTS")).toHaveLength(33);
});

test("register, forgotPassword and verifyEmail are limited per email and per client address", async () => {
  await setLimits({
    register: { email: { max: 2, seconds: 600 }, address: { max: 4, seconds: 600 } },
    forgot_password: { email: { max: 2, seconds: 600 }, address: { max: 3, seconds: 600 } },
    verify_email: { address: { max: 3, seconds: 600 } },
  });
  const REGISTER = `mutation($e: String!) { register(input: {email: $e, password: "correct horse", name: "X"}) { jwtToken } }`;
  const same = uniqueEmail("same");
  expect((await server.graphql(REGISTER, { e: same })).errors).toBeUndefined();
  expect(codes(await server.graphql(REGISTER, { e: same }))).toEqual(["EMAIL_TAKEN"]);
  expect(codes(await server.graphql(REGISTER, { e: same }))).toEqual(["TOO_MANY_ATTEMPTS"]); // per email
  expect((await server.graphql(REGISTER, { e: uniqueEmail() })).errors).toBeUndefined();
  expect(codes(await server.graphql(REGISTER, { e: uniqueEmail() }))).toEqual([]); // 4th from this address
  expect(codes(await server.graphql(REGISTER, { e: uniqueEmail() }))).toEqual(["TOO_MANY_ATTEMPTS"]); // per address

  const FORGOT = `mutation($e: String!) { forgotPassword(input: {email: $e}) { success } }`;
  const target = uniqueEmail("target");
  for (let i = 0; i < 2; i++) expect(codes(await server.graphql(FORGOT, { e: target }))).toEqual([]);
  expect(codes(await server.graphql(FORGOT, { e: target }))).toEqual(["TOO_MANY_ATTEMPTS"]);
  expect(codes(await server.graphql(FORGOT, { e: uniqueEmail() }))).toEqual([]);
  expect(codes(await server.graphql(FORGOT, { e: uniqueEmail() }))).toEqual(["TOO_MANY_ATTEMPTS"]);

  const VERIFY = `mutation($t: String!) { verifyEmail(input: {token: $t}) { success } }`;
  for (let i = 0; i < 3; i++) expect(codes(await server.graphql(VERIFY, { t: `${i}`.repeat(64) }))).toEqual(["TOKEN_INVALID"]);
  expect(codes(await server.graphql(VERIFY, { t: "f".repeat(64) }))).toEqual(["TOO_MANY_ATTEMPTS"]);
});

test("X-Forwarded-For is ignored without TRUST_PROXY and believed with it", async () => {
  await setLimits({ forgot_password: { address: { max: 2, seconds: 600 } } });
  const FORGOT = `mutation($e: String!) { forgotPassword(input: {email: $e}) { success } }`;
  // untrusted: a client inventing addresses is still one address
  for (let i = 0; i < 2; i++) expect(codes(await graphqlFrom(server, FORGOT, { e: uniqueEmail() }, `203.0.113.${i}`))).toEqual([]);
  expect(codes(await graphqlFrom(server, FORGOT, { e: uniqueEmail() }, "203.0.113.99"))).toEqual(["TOO_MANY_ATTEMPTS"]);
  await clearCounters();

  // behind one trusted proxy (TRUST_PROXY=1): each forwarded client is counted on its own
  const proxied = await startTestServer(db, { accounts: accountsConfig({ TRUST_PROXY: "1" }) });
  try {
    await setLimits({ forgot_password: { address: { max: 2, seconds: 600 } } });
    for (const client of ["198.51.100.1", "198.51.100.2"]) {
      for (let i = 0; i < 2; i++) expect(codes(await graphqlFrom(proxied, FORGOT, { e: uniqueEmail() }, client))).toEqual([]);
      expect(codes(await graphqlFrom(proxied, FORGOT, { e: uniqueEmail() }, client))).toEqual(["TOO_MANY_ATTEMPTS"]);
    }
    // with one trusted hop, only the entry the proxy added counts: a spoofed left part does not help
    expect(codes(await graphqlFrom(proxied, FORGOT, { e: uniqueEmail() }, "1.2.3.4, 198.51.100.1"))).toEqual(["TOO_MANY_ATTEMPTS"]);
  } finally {
    await proxied.close();
  }
});

test("subjects are stored as digests: no address or email in clear", async () => {
  await setLimits(accountsConfig({}).attemptLimits);
  const address = uniqueEmail("private");
  await server.graphql(AUTH, { e: address, p: "whatever123" });
  const { rows } = await db.owner.query("select subject from app_private.attempt_counters");
  expect(rows.length).toBeGreaterThan(0);
  for (const r of rows) expect(r.subject).toMatch(/^[0-9a-f]{64}$/);
});
