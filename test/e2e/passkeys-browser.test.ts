// Passkeys in a real browser: Chromium (through playwright-core) with a virtual authenticator
// (DevTools protocol WebAuthn.addVirtualAuthenticator) on a small test page served from
// APP_URL's origin (http://localhost:<port>). The page only calls navigator.credentials; the
// GraphQL calls go from the test to the server. Covered: registration, a passkey as the second
// factor of a password sign-in, passwordless sign-in, and the attacks (an assertion for another
// user's challenge, from another origin, a challenge used twice, a counter that went back).

import http from "node:http";
import type { AddressInfo } from "node:net";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { projectRoot } from "../../core/paths.ts";
import jwt from "jsonwebtoken";
import { chromium, type Browser, type Page } from "playwright-core";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { codes, register, relaxAttemptLimits, signIn, type RegisteredUser } from "../helpers/accounts.ts";

jest.setTimeout(120_000);

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

const PAGE = `<!doctype html><html><head><title>passkeys</title></head><body><script>
const toBuf = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4)), (c) => c.charCodeAt(0)).buffer;
const toB64u = (b) => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
window.createPasskey = async (json) => {
  const o = JSON.parse(json);
  o.challenge = toBuf(o.challenge);
  o.user.id = toBuf(o.user.id);
  o.excludeCredentials = (o.excludeCredentials || []).map((c) => ({ ...c, id: toBuf(c.id) }));
  const c = await navigator.credentials.create({ publicKey: o });
  return JSON.stringify({ id: c.id, rawId: toB64u(c.rawId), type: c.type, clientExtensionResults: c.getClientExtensionResults(),
    authenticatorAttachment: c.authenticatorAttachment,
    response: { clientDataJSON: toB64u(c.response.clientDataJSON), attestationObject: toB64u(c.response.attestationObject), transports: c.response.getTransports() } });
};
window.usePasskey = async (json) => {
  const o = JSON.parse(json);
  o.challenge = toBuf(o.challenge);
  o.allowCredentials = (o.allowCredentials || []).map((c) => ({ ...c, id: toBuf(c.id) }));
  const c = await navigator.credentials.get({ publicKey: o });
  return JSON.stringify({ id: c.id, rawId: toB64u(c.rawId), type: c.type, clientExtensionResults: c.getClientExtensionResults(),
    response: { clientDataJSON: toB64u(c.response.clientDataJSON), authenticatorData: toB64u(c.response.authenticatorData),
      signature: toB64u(c.response.signature), userHandle: c.response.userHandle ? toB64u(c.response.userHandle) : undefined } });
};
</script></body></html>`;

function servePage(): Promise<http.Server> {
  const pageServer = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end(PAGE);
  });
  return new Promise((resolve) => pageServer.listen(0, "127.0.0.1", () => resolve(pageServer)));
}
const portOf = (s: http.Server) => (s.address() as AddressInfo).port;

let db: TestDatabase;
let server: TestServer;
let browser: Browser;
let appPage: http.Server;
let otherPage: http.Server;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install it (apt-get install chromium) or set CHROMIUM_PATH. .ci/run installs it.`);
  }
  appPage = await servePage();
  otherPage = await servePage();
  db = await createTestDatabase();
  server = await startTestServer(db, {
    mfa: { secretKey: null, totpIssuer: "tenantbase-test", appUrl: `http://localhost:${portOf(appPage)}` },
  });
  await relaxAttemptLimits(db);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await db?.drop();
  for (const s of [appPage, otherPage]) if (s) await new Promise((r) => s.close(r));
});

/** A page at `pageServer`'s http://localhost origin with its own virtual authenticator (a device). */
async function device(pageServer = appPage): Promise<Page> {
  const context = await browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
  });
  await page.goto(`http://localhost:${portOf(pageServer)}/`);
  return page;
}

// The operations of docs/mfa.md, run as written.
const DOC_BLOCKS = [...readFileSync(path.join(projectRoot, "docs", "mfa.md"), "utf8").matchAll(/```graphql\n([\s\S]*?)```/g)].map((m) => m[1]);
const docOperation = (name: string) => {
  const block = DOC_BLOCKS.find((b) => b.startsWith(`mutation ${name}`));
  if (!block) throw new Error(`docs/mfa.md has no ${name}`);
  return block;
};
const START_REG = docOperation("StartPasskeyRegistration");
const FINISH_REG = docOperation("FinishPasskeyRegistration");
const START_SIGN_IN = docOperation("StartPasskeySignIn");
const FINISH_SIGN_IN = docOperation("FinishPasskeySignIn");
const START_STEP_UP = docOperation("StartPasskeyStepUp");
const FINISH_STEP_UP = docOperation("FinishPasskeyStepUp");

async function withPasskey(page: Page): Promise<RegisteredUser> {
  const user = await register(server);
  const start = await server.graphql(START_REG, {}, user.token);
  expect(start.errors).toBeUndefined();
  const response = await page.evaluate((o) => (window as any).createPasskey(o), start.data.startPasskeyRegistration.optionsJson);
  const finish = await server.graphql(FINISH_REG, { challengeId: start.data.startPasskeyRegistration.challengeId, responseJson: response }, user.token);
  expect(finish.errors).toBeUndefined();
  expect(finish.data.finishPasskeyRegistration.recoveryCodes).toHaveLength(10);
  return user;
}

async function assertion(page: Page, mfaChallenge: string | null): Promise<{ challengeId: string; response: string }> {
  const start = await server.graphql(START_SIGN_IN, { mfaChallenge });
  expect(start.errors).toBeUndefined();
  const response = await page.evaluate((o) => (window as any).usePasskey(o), start.data.startPasskeySignIn.optionsJson);
  return { challengeId: start.data.startPasskeySignIn.challengeId, response };
}

test("register a passkey, then use it as the second factor of a password sign-in and for a passwordless sign-in", async () => {
  const page = await device();
  const user = await withPasskey(page);
  const factors = await server.graphql(`{ myMfaFactors { kind name } }`, {}, user.token);
  expect(factors.data.myMfaFactors).toEqual([{ kind: "passkey", name: "Laptop" }]);

  const challenge = (await signIn(server, user.email, user.password)).data.authenticate.jwtToken;
  expect(jwt.decode(challenge)).toMatchObject({ role: "mfa_challenge" });
  const second = await assertion(page, challenge);
  const signedIn = await server.graphql(FINISH_SIGN_IN, { challengeId: second.challengeId, responseJson: second.response });
  expect(signedIn.errors).toBeUndefined();
  const token = signedIn.data.finishPasskeySignIn.jwtToken;
  expect((await server.graphql(`{ currentUser { id } }`, {}, token)).data.currentUser.id).toBe(user.userId);
  // the challenge was taken by the passkey
  expect(codes(await server.graphql(`mutation($c: String!) { verifyMfa(input: {challenge: $c, code: "000000"}) { jwtToken } }`, { c: challenge }))).toEqual(["MFA_CHALLENGE_INVALID"]);

  const passwordless = await assertion(page, null);
  const direct = await server.graphql(FINISH_SIGN_IN, { challengeId: passwordless.challengeId, responseJson: passwordless.response });
  expect(direct.errors).toBeUndefined();
  const sessionId = (jwt.decode(direct.data.finishPasskeySignIn.jwtToken) as { session_id: string }).session_id;
  const session = (await db.owner.query("select aal, method from app_private.sessions where id = $1", [sessionId])).rows[0];
  expect(session).toEqual({ aal: "aal2", method: "passkey" });
  const counter = (await db.owner.query("select passkey_counter::int as n, passkey_backed_up from app_private.mfa_factors where user_id = $1", [user.userId])).rows[0];
  expect(counter.n).toBeGreaterThan(0);
  expect(counter.passkey_backed_up).toBe(false);
  // the same answer again: its challenge is gone
  expect(codes(await server.graphql(FINISH_SIGN_IN, { challengeId: passwordless.challengeId, responseJson: passwordless.response }))).toEqual(["MFA_CHALLENGE_INVALID"]);
});

test("step-up with a passkey: an old session becomes aal2 now; another user's session cannot use the challenge", async () => {
  const page = await device();
  const user = await withPasskey(page);
  const other = await register(server);
  await db.owner.query("update app_private.sessions set aal = 'aal1', aal2_at = null where id = $1", [user.sessionId]);
  const start = await server.graphql(START_STEP_UP, {}, user.token);
  expect(start.errors).toBeUndefined();
  const response = await page.evaluate((o) => (window as any).usePasskey(o), start.data.startPasskeyStepUp.optionsJson);
  const vars = { challengeId: start.data.startPasskeyStepUp.challengeId, responseJson: response };
  expect(codes(await server.graphql(FINISH_STEP_UP, vars, other.token))).toEqual(["MFA_CHALLENGE_INVALID"]);
  const done = await server.graphql(FINISH_STEP_UP, vars, user.token);
  expect(done.errors).toBeUndefined();
  const session = (await db.owner.query("select aal, aal2_at > now() - interval '1 minute' as fresh from app_private.sessions where id = $1", [user.sessionId])).rows[0];
  expect(session).toEqual({ aal: "aal2", fresh: true });
});

test("an assertion cannot answer another user's challenge, come from another origin, or carry a counter that went back", async () => {
  const alicePage = await device();
  const bobPage = await device();
  const alice = await withPasskey(alicePage);
  const bob = await withPasskey(bobPage);

  // Alice's passkey answering Bob's MFA challenge (Bob's allowed credentials are not Alice's, so
  // the options are made for Alice's own sign-in and the answer is sent against Bob's challenge)
  const bobChallenge = (await signIn(server, bob.email, bob.password)).data.authenticate.jwtToken;
  const bobStart = await server.graphql(START_SIGN_IN, { mfaChallenge: bobChallenge });
  const aliceAnswer = await assertion(alicePage, null);
  expect(codes(await server.graphql(FINISH_SIGN_IN, { challengeId: bobStart.data.startPasskeySignIn.challengeId, responseJson: aliceAnswer.response }))).toEqual(["MFA_CODE_INVALID"]);

  // another origin (same host, another port): the browser signs its origin into clientDataJSON
  const elsewhere = await device(otherPage);
  const eveUser = await withPasskeyOn(elsewhere);
  expect(eveUser).toBe("MFA_CODE_INVALID");

  // a counter that went back (a cloned authenticator)
  await db.owner.query("update app_private.mfa_factors set passkey_counter = 1000000 where user_id = $1", [alice.userId]);
  const cloned = await assertion(alicePage, null);
  expect(codes(await server.graphql(FINISH_SIGN_IN, { challengeId: cloned.challengeId, responseJson: cloned.response }))).toEqual(["MFA_CODE_INVALID"]);
});

/** Registration from a page outside APP_URL's origin: the code the server answers. */
async function withPasskeyOn(page: Page): Promise<string | undefined> {
  const user = await register(server);
  const start = await server.graphql(START_REG, {}, user.token);
  const response = await page.evaluate((o) => (window as any).createPasskey(o), start.data.startPasskeyRegistration.optionsJson);
  return codes(await server.graphql(FINISH_REG, { challengeId: start.data.startPasskeyRegistration.challengeId, responseJson: response }, user.token))[0];
}
