// Brute-force limits over real HTTP, counted in PostgreSQL: N wrong passwords from one address,
// then the right one from that address refused with TOO_MANY_ATTEMPTS and retryAfter until the
// window passes (moved back in the database, not waited for); per client address; aliases
// counted one by one; concurrent attempts from many connections; X-Forwarded-For believed only
// with TRUST_PROXY. What others' attempts cannot do to an owner (the account is only slowed
// down, never locked): test/adversarial/sign-in-lockout.test.ts.

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

test("10 wrong passwords from one address, then the right one from there is refused with retryAfter until the window passes", async () => {
  await setLimits(accountsConfig({}).attemptLimits); // the defaults: 10 per address and email per 15 minutes
  const ada = await register(server);
  for (let i = 0; i < 10; i++) expect(codes(await server.graphql(AUTH, { e: ada.email, p: `wrong ${i}` }))).toEqual(["INVALID_CREDENTIALS"]);
  const locked = await server.graphql(AUTH, { e: ada.email, p: ada.password });
  expect(codes(locked)).toEqual(["TOO_MANY_ATTEMPTS"]);
  expect(locked.data?.authenticate ?? null).toBeNull();
  const retryAfter = locked.errors![0].extensions!.retryAfter as number;
  expect(Number.isInteger(retryAfter)).toBe(true);
  expect(retryAfter).toBeGreaterThan(0);
  expect(retryAfter).toBeLessThanOrEqual(900);
  // the pair is locked whatever the email's case; another account is not
  expect(codes(await server.graphql(AUTH, { e: ada.email.toUpperCase(), p: ada.password }))).toEqual(["TOO_MANY_ATTEMPTS"]);
  const bob = await register(server);
  expect((await server.graphql(AUTH, { e: bob.email, p: bob.password })).data.authenticate.jwtToken).toBeTruthy();

  // 10 seconds before the window ends: still locked, retryAfter about 10
  await db.owner.query(
    "update app_private.attempt_counters set window_started_at = now() - interval '890 seconds' where action = 'authenticate' and scope = 'pair'",
  );
  const late = await server.graphql(AUTH, { e: ada.email, p: ada.password });
  expect(codes(late)).toEqual(["TOO_MANY_ATTEMPTS"]);
  expect(late.errors![0].extensions!.retryAfter).toBeLessThanOrEqual(10);
  // the window has passed: the right password works, and success forgets the failures
  await db.owner.query(
    "update app_private.attempt_counters set window_started_at = now() - interval '901 seconds' where action = 'authenticate' and scope = 'pair'",
  );
  expect((await server.graphql(AUTH, { e: ada.email, p: ada.password })).data.authenticate.jwtToken).toBeTruthy();
  const { rows } = await db.owner.query("select count(*)::int as n from app_private.attempt_counters where action = 'authenticate' and scope = 'pair'");
  expect(rows[0].n).toBe(0);
});

test("aliased guesses: a request may check one password, so 30 aliased guesses are refused whole and count nothing", async () => {
  await setLimits({ authenticate: { pair: { max: 5, seconds: 600 } } });
  const cy = await register(server);
  const guesses = Array.from({ length: 30 }, (_, i) => (i === 29 ? cy.password : `guess ${i}`));
  const query = `mutation { ${guesses
    .map((g, i) => `g${i}: authenticate(input: {email: ${JSON.stringify(cy.email)}, password: ${JSON.stringify(g)}}) { jwtToken }`)
    .join(" ")} }`;
  const r = await server.graphql(query);
  // Refused during validation (GRAPHQL_MAX_… limits, server/graphql-limits.ts): nothing ran.
  expect(codes(r)).toEqual(["TOO_MANY_PASSWORD_MUTATIONS"]);
  expect(r.data).toBeUndefined();
  // No attempt was counted: five single guesses still get their answers.
  for (let i = 0; i < 5; i++) {
    const one = await server.graphql(AUTH, { e: cy.email, p: `single guess ${i}` });
    expect(codes(one)).toEqual(["INVALID_CREDENTIALS"]);
  }
  expect(codes(await server.graphql(AUTH, { e: cy.email, p: cy.password }))).toEqual(["TOO_MANY_ATTEMPTS"]);
});

test("40 concurrent attempts from 40 connections: exactly the limit get through to the password check", async () => {
  await setLimits({ authenticate: { pair: { max: 7, seconds: 600 } } });
  const dee = await register(server);
  const results = await Promise.all(Array.from({ length: 40 }, () => server.graphql(AUTH, { e: dee.email, p: "wrong password" })));
  const found = results.flatMap(codes);
  expect(found.filter((c) => c === "INVALID_CREDENTIALS")).toHaveLength(7);
  expect(found.filter((c) => c === "TOO_MANY_ATTEMPTS")).toHaveLength(33);
});

test("register is limited per address and email and per address; forgotPassword per address (and its mails per email); verifyEmail per address", async () => {
  await setLimits({
    register: { pair: { max: 2, seconds: 600 }, address: { max: 4, seconds: 600 } },
    forgot_password: { email: { max: 1, seconds: 600 }, address: { max: 3, seconds: 600 } },
    verify_email: { address: { max: 3, seconds: 600 } },
  });
  const REGISTER = `mutation($e: String!) { register(input: {email: $e, password: "correct horse", name: "X"}) { jwtToken } }`;
  const same = uniqueEmail("same");
  expect((await server.graphql(REGISTER, { e: same })).errors).toBeUndefined();
  expect(codes(await server.graphql(REGISTER, { e: same }))).toEqual(["EMAIL_TAKEN"]);
  expect(codes(await server.graphql(REGISTER, { e: same }))).toEqual(["TOO_MANY_ATTEMPTS"]); // per address and email
  expect((await server.graphql(REGISTER, { e: uniqueEmail() })).errors).toBeUndefined();
  expect(codes(await server.graphql(REGISTER, { e: uniqueEmail() }))).toEqual([]); // 4th from this address
  expect(codes(await server.graphql(REGISTER, { e: uniqueEmail() }))).toEqual(["TOO_MANY_ATTEMPTS"]); // per address

  const FORGOT = `mutation($e: String!) { forgotPassword(input: {email: $e}) { success } }`;
  const target = uniqueEmail("target");
  // never refused per email (someone else may be asking): the mail to it is rate-bounded instead
  for (let i = 0; i < 3; i++) expect(codes(await server.graphql(FORGOT, { e: target }))).toEqual([]);
  const { rows } = await db.owner.query(
    `select count(*)::int as n from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id
     where t.identifier = 'send_account_email' and j.payload->>'email' = $1`,
    [target],
  );
  expect(rows[0].n).toBe(1);
  expect(codes(await server.graphql(FORGOT, { e: uniqueEmail() }))).toEqual(["TOO_MANY_ATTEMPTS"]); // per address

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
