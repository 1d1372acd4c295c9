// Attacks on provider sign-in (server/identity/, db/functions/030-identities), each kept as a
// test: replayed state or code, a callback in another browser, ID tokens that differ from a good
// one only in what they attack (another client, expired, another nonce, alg none, HMAC with the
// client secret), an unverified provider email matching a victim's account, an attacker's
// unverified account pre-registered on the victim's address, a redirect outside APP_URL, and
// flows started per address past the limit. The issuer is a real OpenID Connect provider in
// process (oidc-provider); the edited ID tokens are signed with its own key unless the attack is
// the signature.

import { randomBytes } from "node:crypto";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { codes, register } from "../helpers/accounts.ts";
import { startSignInRig, TestBrowser, type IdTokenEdit, type SignInRig } from "../helpers/sign-in-providers.ts";

let db: TestDatabase;
let rig: SignInRig;
beforeAll(async () => {
  db = await createTestDatabase();
  rig = await startSignInRig(db);
});
afterEach(() => {
  rig.issuer.editIdToken = null;
});
afterAll(async () => {
  await rig?.close();
  await db?.drop();
});

const unique = (label: string) => `${label}-${randomBytes(5).toString("hex")}`;
const ME = `{ currentUser { id } }`;

function newPerson(verified = true): { sub: string; email: string } {
  const person = { sub: unique("sub"), email: `${unique("p")}@example.com` };
  rig.issuer.accounts.set(person.sub, { email: person.email, email_verified: verified });
  return person;
}
const identities = async (subject: string) =>
  (await db.owner.query("select count(*)::int as n from app_private.identities where subject = $1", [subject])).rows[0].n;

test("a replayed callback (same state and code) is refused; so is a replayed exchange code", async () => {
  const person = newPerson();
  const browser = new TestBrowser();
  // stop at the callback URL the provider sent the browser to, then use it twice
  const started = await browser.request(`${rig.server.url}/auth/test/start`, { headers: { accept: "application/json" } });
  const callback = await browser.signIn((await started.json() as any).url, `${rig.server.url}/auth/test/callback`, person.sub);
  const first = await browser.signIn(callback.toString(), rig.appUrl);
  const code = first.searchParams.get("code")!;
  expect(code).toBeTruthy();
  const replay = await browser.signIn(callback.toString(), rig.appUrl);
  expect(replay.searchParams.get("error")).toBe("SIGN_IN_FLOW_INVALID");
  expect(replay.searchParams.get("code")).toBeNull();
  expect((await rig.exchange(code)).errors).toBeUndefined();
  expect(codes(await rig.exchange(code))).toEqual(["SIGN_IN_CODE_INVALID"]);
});

test("a callback in another browser (login CSRF: the attacker's code in the victim's browser) is refused", async () => {
  const attacker = newPerson();
  const attackerBrowser = new TestBrowser();
  const started = await attackerBrowser.request(`${rig.server.url}/auth/test/start`, { headers: { accept: "application/json" } });
  const callback = await attackerBrowser.signIn((await started.json() as any).url, `${rig.server.url}/auth/test/callback`, attacker.sub);
  const victimBrowser = new TestBrowser();
  const landed = await victimBrowser.signIn(callback.toString(), rig.appUrl);
  expect(landed.searchParams.get("error")).toBe("SIGN_IN_FLOW_INVALID");
  expect(await identities(attacker.sub)).toBe(0);
});

const idTokenAttacks: [string, (t: IdTokenEdit) => IdTokenEdit][] = [
  ["an ID token for another client (aud)", (t) => ({ ...t, payload: { ...t.payload, aud: "another-client" } })],
  ["an expired ID token", (t) => ({ ...t, payload: { ...t.payload, iat: 1_000_000_000, exp: 1_000_000_600 } })],
  ["an ID token with another nonce", (t) => ({ ...t, payload: { ...t.payload, nonce: "attacker-nonce" } })],
  ["an ID token from another issuer", (t) => ({ ...t, payload: { ...t.payload, iss: "https://evil.example" } })],
  ["an unsigned ID token (alg: none)", (t) => ({ ...t, signWith: "none" })],
  ["an ID token signed with HMAC (HS256, the client secret as key)", (t) => ({ ...t, signWith: "hmac" })],
  ["an ID token whose signature does not match its claims", (t) => ({ ...t, payloadAfterSigning: { ...t.payload, email: "victim@example.com", email_verified: true } })],
];

test.each(idTokenAttacks)("%s: refused (SIGN_IN_FAILED), nothing created", async (_name, edit) => {
  const person = newPerson();
  rig.issuer.editIdToken = edit;
  const landed = await rig.signIn(new TestBrowser(), "test", person.sub);
  expect(landed.searchParams.get("error")).toBe("SIGN_IN_FAILED");
  expect(landed.searchParams.get("code")).toBeNull();
  expect(await identities(person.sub)).toBe(0);
  expect((await db.owner.query("select count(*)::int as n from app_public.users where email = $1", [person.email])).rows[0].n).toBe(0);
});

test("the edit hook itself leaves a good token good (the attacks above differ only in what they attack)", async () => {
  const person = newPerson();
  rig.issuer.editIdToken = (t) => t;
  const landed = await rig.signIn(new TestBrowser(), "test", person.sub);
  expect(landed.searchParams.get("code")).toBeTruthy();
});

test("an unverified provider email matching a victim's account: never linked, no code (OIDC and GitHub)", async () => {
  const victim = await register(rig.server);
  await db.owner.query("update app_public.users set email_verified_at = now() where id = $1", [victim.userId]);
  const sub = unique("sub");
  rig.issuer.accounts.set(sub, { email: victim.email, email_verified: false });
  const landed = await rig.signIn(new TestBrowser(), "test", sub);
  expect(landed.searchParams.get("error")).toBe("PROVIDER_EMAIL_NOT_VERIFIED");
  // a provider that says nothing about verification is not verified either
  const silent = unique("sub");
  rig.issuer.accounts.set(silent, { email: victim.email });
  expect((await rig.signIn(new TestBrowser(), "test", silent)).searchParams.get("error")).toBe("PROVIDER_EMAIL_NOT_VERIFIED");
  // GitHub: the victim's address as the primary, unverified (GitHub lets anyone add any address)
  rig.github.nextUser = { id: 66601, login: "mallory", name: null, emails: [{ email: victim.email, primary: true, verified: false }] };
  expect((await rig.signIn(new TestBrowser(), "github")).searchParams.get("error")).toBe("PROVIDER_EMAIL_NOT_VERIFIED");
  expect((await db.owner.query("select count(*)::int as n from app_private.identities where user_id = $1", [victim.userId])).rows[0].n).toBe(0);
});

test("an attacker's unverified account pre-registered on the victim's address does not survive the victim's provider sign-in", async () => {
  const victimEmail = `${unique("victim")}@example.com`;
  const attacker = await register(rig.server, victimEmail, "attacker password");
  const sub = unique("sub");
  rig.issuer.accounts.set(sub, { email: victimEmail, email_verified: true });
  const landed = await rig.signIn(new TestBrowser(), "test", sub);
  const token = (await rig.exchange(landed.searchParams.get("code")!)).data.exchangeSignInCode.jwtToken;
  expect((await rig.server.graphql(ME, {}, token)).data.currentUser.id).toBe(attacker.userId);
  // the attacker's session is gone and their password no longer signs in
  expect((await rig.server.graphql(ME, {}, attacker.token)).status).toBe(401);
  const signIn = await rig.server.graphql(`mutation($e: String!, $p: String!) { authenticate(input: {email: $e, password: $p}) { jwtToken } }`, { e: victimEmail, p: "attacker password" });
  expect(codes(signIn)).toEqual(["INVALID_CREDENTIALS"]);
});

test("a redirect outside APP_URL is refused before anything starts", async () => {
  const outside = [
    "https://evil.example/cb",
    "//evil.example/cb",
    "/\\evil.example",
    "http://app.test:3000@evil.example/",
    "http://app.test:3001/cb",
    "https://app.test:3000/cb",
    "javascript:alert(1)",
    " http://app.test:3000/cb",
  ];
  const before = (await db.owner.query("select count(*)::int as n from app_private.sign_in_flows")).rows[0].n;
  for (const redirect of outside) {
    const response = await fetch(`${rig.server.url}/auth/test/start?redirect=${encodeURIComponent(redirect)}`, { redirect: "manual" });
    expect([redirect, response.status]).toEqual([redirect, 400]);
    expect(codes((await response.json()) as any)).toEqual(["REDIRECT_NOT_ALLOWED"]);
  }
  expect((await db.owner.query("select count(*)::int as n from app_private.sign_in_flows")).rows[0].n).toBe(before);
  // inside APP_URL: a path or a full URL of the app
  for (const redirect of ["/after", `${rig.appUrl}/after?x=1`]) {
    expect((await fetch(`${rig.server.url}/auth/test/start?redirect=${encodeURIComponent(redirect)}`, { redirect: "manual" })).status).toBe(302);
  }
});

test("flows started per client address are limited like password attempts (429 TOO_MANY_ATTEMPTS, Retry-After)", async () => {
  await db.owner.query(`update app_private.account_settings set attempt_limits = attempt_limits || '{"sign_in_flow": {"address": {"max": 3, "seconds": 900}}}'`);
  await db.owner.query(`delete from app_private.attempt_counters where action = 'sign_in_flow'`);
  try {
    const statuses: number[] = [];
    let last: Response | null = null;
    for (let i = 0; i < 4; i++) {
      last = await fetch(`${rig.server.url}/auth/test/start`, { redirect: "manual" });
      statuses.push(last.status);
    }
    expect(statuses).toEqual([302, 302, 302, 429]);
    expect(Number(last!.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(codes((await last!.json()) as any)).toEqual(["TOO_MANY_ATTEMPTS"]);
  } finally {
    await db.owner.query(`update app_private.account_settings set attempt_limits = attempt_limits || '{"sign_in_flow": {"address": {"max": 100000, "seconds": 60}}}'`);
    await db.owner.query(`delete from app_private.attempt_counters where action = 'sign_in_flow'`);
  }
});

test("nothing secret reaches the app's URL or the start answer: no token, verifier or nonce", async () => {
  const person = newPerson();
  const browser = new TestBrowser();
  const started = await browser.request(`${rig.server.url}/auth/test/start`, { headers: { accept: "application/json" } });
  const body = await started.text();
  const { rows } = await db.owner.query("select code_verifier from app_private.sign_in_flows order by created_at desc limit 1");
  expect(body).not.toContain(rows[0].code_verifier);
  const landed = await browser.signIn(JSON.parse(body).url, rig.appUrl, person.sub);
  expect([...landed.searchParams.keys()]).toEqual(["code"]);
  expect(landed.toString()).not.toMatch(/eyJ/); // no JWT
});
