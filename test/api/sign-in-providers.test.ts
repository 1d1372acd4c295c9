// Social and OIDC sign-in over real HTTP, against a real OpenID Connect issuer in process
// (oidc-provider) and a fake of GitHub's OAuth pages and API: start → provider → callback → the
// app's URL with a one-time code → exchangeSignInCode → the same jwtToken a password sign-in
// gives. Linking and unlinking providers as a signed-in user. The attacks are in
// test/adversarial/sign-in-providers.test.ts.

import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { projectRoot } from "../../core/paths.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { codes, register } from "../helpers/accounts.ts";
import { startSignInRig, TestBrowser, type SignInRig } from "../helpers/sign-in-providers.ts";

let db: TestDatabase;
let rig: SignInRig;
beforeAll(async () => {
  db = await createTestDatabase();
  rig = await startSignInRig(db);
});
afterAll(async () => {
  await rig?.close();
  await db?.drop();
});

const unique = (label: string) => `${label}-${randomBytes(5).toString("hex")}`;
const ME = `{ currentUser { id email } }`;
const IDENTITIES = `{ myIdentities { id provider email emailVerified } }`;
const SESSIONS = `{ mySessions { id current method } }`;

test("OIDC: a new verified identity becomes a verified account; the app exchanges its code once for a working token", async () => {
  const email = `${unique("oidc")}@example.com`;
  const sub = unique("sub");
  rig.issuer.accounts.set(sub, { email, email_verified: true, name: "Olive Idc" });
  const browser = new TestBrowser();
  const landed = await rig.signIn(browser, "test", sub, { redirect: "/welcome?from=login" });
  expect(landed.origin + landed.pathname).toBe(`${rig.appUrl}/welcome`);
  expect(landed.searchParams.get("from")).toBe("login");
  const code = landed.searchParams.get("code")!;
  expect(code).toMatch(/^[A-Za-z0-9_-]{43}$/);
  expect([...landed.searchParams.keys()].sort()).toEqual(["code", "from"]); // no token in the URL

  const exchanged = await rig.exchange(code);
  expect(exchanged.errors).toBeUndefined();
  const token = exchanged.data.exchangeSignInCode.jwtToken;
  const me = await rig.server.graphql(ME, {}, token);
  expect(me.data.currentUser.email).toBe(email);
  expect((await db.owner.query("select email_verified_at is not null as v, name from app_public.users where email = $1", [email])).rows[0]).toEqual({ v: true, name: "Olive Idc" });
  expect((await rig.server.graphql(IDENTITIES, {}, token)).data.myIdentities).toEqual([
    { id: expect.any(String), provider: "test", email, emailVerified: true },
  ]);
  // an ordinary session: listed, and revocable; it records how it was made
  const sessions = (await rig.server.graphql(SESSIONS, {}, token)).data.mySessions;
  expect(sessions).toEqual([{ id: expect.any(String), current: true, method: "provider" }]);
  expect(codes(await rig.exchange(code))).toEqual(["SIGN_IN_CODE_INVALID"]);
  await rig.server.graphql(`mutation { logout(input: {}) { success } }`, {}, token);
  expect((await rig.server.graphql(ME, {}, token)).status).toBe(401);

  // signing in again with the same identity: the same account, a new session
  const again = await rig.signIn(new TestBrowser(), "test", sub);
  expect(again.origin + again.pathname).toBe(`${rig.appUrl}/sign-in/callback`);
  const second = (await rig.exchange(again.searchParams.get("code")!)).data.exchangeSignInCode.jwtToken;
  expect((await rig.server.graphql(ME, {}, second)).data.currentUser.id).toBe(me.data.currentUser.id);
});

test("start answers JSON with the provider's URL when asked, and binds the flow to the browser with an HttpOnly cookie", async () => {
  const browser = new TestBrowser();
  const response = await browser.request(`${rig.server.url}/auth/test/start?redirect=${encodeURIComponent(`${rig.appUrl}/cb`)}`, { headers: { accept: "application/json" } });
  expect(response.status).toBe(200);
  const { url } = (await response.json()) as { url: string };
  const target = new URL(url);
  expect(target.origin).toBe(rig.issuer.url);
  expect(target.searchParams.get("code_challenge_method")).toBe("S256");
  expect(target.searchParams.get("state")).toMatch(/^[A-Za-z0-9_-]{43}$/);
  expect(target.searchParams.get("nonce")).toMatch(/^[A-Za-z0-9_-]{43}$/);
  expect(target.searchParams.get("redirect_uri")).toBe(`${rig.server.url}/auth/test/callback`);
  const cookie = response.headers.getSetCookie().find((c) => c.startsWith("tb_sign_in="))!;
  expect(cookie).toMatch(/HttpOnly/);
  expect(cookie).toMatch(/SameSite=Lax/);
  expect(cookie).toMatch(/Path=\/auth/);
  // an unknown provider
  const unknown = await fetch(`${rig.server.url}/auth/nope/start`);
  expect(unknown.status).toBe(404);
  expect(codes((await unknown.json()) as any)).toEqual(["UNKNOWN_PROVIDER"]);
});

test("GitHub: the address comes from /user/emails with its verified flag; a verified primary makes an account", async () => {
  const email = `${unique("gh")}@example.com`;
  rig.github.nextUser = { id: 9001, login: "hubber", name: "Hub Ber", emails: [
    { email: `${unique("other")}@example.com`, primary: false, verified: false },
    { email, primary: true, verified: true },
  ] };
  const landed = await rig.signIn(new TestBrowser(), "github");
  const token = (await rig.exchange(landed.searchParams.get("code")!)).data.exchangeSignInCode.jwtToken;
  expect((await rig.server.graphql(ME, {}, token)).data.currentUser.email).toBe(email);
  expect((await db.owner.query("select issuer, subject from app_private.identities where email = $1", [email])).rows[0]).toEqual({ issuer: "https://github.com", subject: "9001" });
});

test("a provider email matching a verified password account links to it (both verified); the password still works", async () => {
  const ada = await register(rig.server);
  await db.owner.query("update app_public.users set email_verified_at = now() where id = $1", [ada.userId]);
  const sub = unique("sub");
  rig.issuer.accounts.set(sub, { email: ada.email, email_verified: true });
  const landed = await rig.signIn(new TestBrowser(), "test", sub);
  const token = (await rig.exchange(landed.searchParams.get("code")!)).data.exchangeSignInCode.jwtToken;
  expect((await rig.server.graphql(ME, {}, token)).data.currentUser.id).toBe(ada.userId);
  expect((await rig.server.graphql(ME, {}, ada.token)).status).toBe(200);
});

test("a signed-in user links GitHub (start with link=1 and their token), sees it, and unlinks it; never the last way in", async () => {
  const bea = await register(rig.server);
  rig.github.nextUser = { id: 4242, login: "bea", name: null, emails: [{ email: `${unique("bea")}@example.com`, primary: true, verified: false }] };
  const browser = new TestBrowser();
  const started = await browser.request(`${rig.server.url}/auth/github/start?link=1&redirect=/settings/sign-in`, {
    headers: { accept: "application/json", authorization: `Bearer ${bea.token}` },
  });
  expect(started.status).toBe(200);
  const landed = await browser.signIn((await started.json() as any).url, rig.appUrl);
  expect(landed.pathname).toBe("/settings/sign-in");
  expect(landed.searchParams.get("linked")).toBe("github");
  expect(landed.searchParams.get("code")).toBeNull();
  const list = (await rig.server.graphql(IDENTITIES, {}, bea.token)).data.myIdentities;
  expect(list.map((i: any) => i.provider)).toEqual(["github"]);

  // linking without a token is refused
  const anonymous = await fetch(`${rig.server.url}/auth/github/start?link=1`, { headers: { accept: "application/json" } });
  expect(anonymous.status).toBe(401);

  // a second account tries to link the same GitHub user: IDENTITY_TAKEN
  const cy = await register(rig.server);
  const other = new TestBrowser();
  const otherStart = await other.request(`${rig.server.url}/auth/github/start?link=1`, { headers: { accept: "application/json", authorization: `Bearer ${cy.token}` } });
  const refused = await other.signIn((await otherStart.json() as any).url, rig.appUrl);
  expect(refused.searchParams.get("error")).toBe("IDENTITY_TAKEN");

  const UNLINK = `mutation($id: UUID!) { unlinkIdentity(input: {id: $id}) { success } }`;
  expect(codes(await rig.server.graphql(UNLINK, { id: list[0].id }, cy.token))).toEqual(["NOT_FOUND"]);
  expect((await rig.server.graphql(UNLINK, { id: list[0].id }, bea.token)).data.unlinkIdentity.success).toBe(true);
  expect((await rig.server.graphql(IDENTITIES, {}, bea.token)).data.myIdentities).toEqual([]);

  // an account made by a provider has no password: its one identity cannot be unlinked
  const sub = unique("sub");
  rig.issuer.accounts.set(sub, { email: `${unique("solo")}@example.com`, email_verified: true });
  const solo = await rig.signIn(new TestBrowser(), "test", sub);
  const soloToken = (await rig.exchange(solo.searchParams.get("code")!)).data.exchangeSignInCode.jwtToken;
  const [only] = (await rig.server.graphql(IDENTITIES, {}, soloToken)).data.myIdentities;
  expect(codes(await rig.server.graphql(UNLINK, { id: only.id }, soloToken))).toEqual(["LAST_SIGN_IN_METHOD"]);
});

test("the provider's refusal (the user cancelled) reaches the app as SIGN_IN_CANCELLED", async () => {
  const browser = new TestBrowser();
  const started = await browser.request(`${rig.server.url}/auth/test/start`, { headers: { accept: "application/json" } });
  const state = new URL((await started.json() as any).url).searchParams.get("state")!;
  const landed = await browser.signIn(`${rig.server.url}/auth/test/callback?error=access_denied&state=${state}`, rig.appUrl);
  expect(landed.searchParams.get("error")).toBe("SIGN_IN_CANCELLED");
});

test("the operations in docs/sign-in-providers.md run as written", async () => {
  const doc = readFileSync(path.join(projectRoot, "docs", "sign-in-providers.md"), "utf8");
  const blocks = [...doc.matchAll(/```graphql\n([\s\S]*?)```/g)].map((m) => m[1]);
  const named = (name: string) => blocks.find((b) => b.includes(`${name}`))!;
  const sub = unique("sub");
  rig.issuer.accounts.set(sub, { email: `${unique("doc")}@example.com`, email_verified: true });
  const landed = await rig.signIn(new TestBrowser(), "test", sub);
  const exchanged = await rig.server.graphql(named("mutation ExchangeSignInCode"), { code: landed.searchParams.get("code") });
  expect(exchanged.errors).toBeUndefined();
  const token = exchanged.data.exchangeSignInCode.jwtToken;
  const list = await rig.server.graphql(named("query MyIdentities"), {}, token);
  expect(list.errors).toBeUndefined();
  expect(list.data.myIdentities).toHaveLength(1);
  const unlink = await rig.server.graphql(named("mutation UnlinkIdentity"), { id: list.data.myIdentities[0].id }, token);
  expect(codes(unlink)).toEqual(["LAST_SIGN_IN_METHOD"]);
});
