// Multi-factor sign-in over real HTTP with pinned TOTP times: enrolling a TOTP app, signing in
// through an MFA challenge (verifyMfa), step-up, the organization policy, and the operations of
// docs/mfa.md. The attacks are in test/adversarial/mfa.test.ts.

import { readFileSync } from "node:fs";
import path from "node:path";
import jwt from "jsonwebtoken";
import { projectRoot } from "../../core/paths.ts";
import { generate } from "otplib";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { codes, register, relaxAttemptLimits, signIn, type RegisteredUser } from "../helpers/accounts.ts";

let db: TestDatabase;
let server: TestServer;
// 2026-01-01T00:00:00Z; each test moves it on
let now = 1767225600;
beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db, { mfa: { secretKey: "test-mfa-key-0123456789abcdefghijklmnop", totpIssuer: "tenantbase-test", appUrl: "http://localhost:3000", now: () => now } });
  await relaxAttemptLimits(db);
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

const ENROLL = `mutation { enrollTotp(input: {name: "Phone"}) { factorId secret uri } }`;
const CONFIRM = `mutation($f: UUID!, $c: String!) { confirmTotp(input: {factorId: $f, code: $c}) { recoveryCodes } }`;
const VERIFY = `mutation($ch: String!, $c: String!) { verifyMfa(input: {challenge: $ch, code: $c}) { jwtToken } }`;
const STEP_UP = `mutation($c: String!) { stepUpMfa(input: {code: $c}) { success } }`;
const ME = `{ currentUser { id } }`;

const codeAt = (secret: string, epoch: number) => generate({ secret, epoch });

async function enrolled(): Promise<RegisteredUser & { secret: string; recoveryCodes: string[] }> {
  const user = await register(server);
  const e = await server.graphql(ENROLL, {}, user.token);
  expect(e.errors).toBeUndefined();
  const { factorId, secret, uri } = e.data.enrollTotp;
  expect(uri).toMatch(/^otpauth:\/\/totp\/tenantbase-test:/);
  const c = await server.graphql(CONFIRM, { f: factorId, c: await codeAt(secret, now) }, user.token);
  expect(c.errors).toBeUndefined();
  now += 30; // the next code is a new step
  return { ...user, secret, recoveryCodes: c.data.confirmTotp.recoveryCodes };
}

async function challengeFor(user: { email: string; password: string }): Promise<string> {
  const r = await signIn(server, user.email, user.password);
  expect(r.errors).toBeUndefined();
  return r.data.authenticate.jwtToken;
}

test("enrol, then sign in: authenticate answers a challenge, verifyMfa the aal2 session; a replayed code or challenge is refused", async () => {
  const user = await enrolled();
  expect(user.recoveryCodes).toHaveLength(10);
  const challenge = await challengeFor(user);
  expect(jwt.decode(challenge)).toMatchObject({ role: "mfa_challenge", sub: null });
  // the challenge reaches no data
  const asToken = await server.graphql(ME, {}, challenge);
  expect(asToken.status).toBe(401);
  expect(codes(asToken)).toEqual(["INVALID_TOKEN"]);

  const code = await codeAt(user.secret, now);
  const ok = await server.graphql(VERIFY, { ch: challenge, c: code });
  expect(ok.errors).toBeUndefined();
  const session = ok.data.verifyMfa.jwtToken;
  expect((await server.graphql(ME, {}, session)).data.currentUser.id).toBe(user.userId);
  const sessions = await server.graphql(`{ mySessions { current aal } }`, {}, session);
  expect(sessions.data.mySessions.find((s: { current: boolean }) => s.current).aal).toBe("aal2");

  expect(codes(await server.graphql(VERIFY, { ch: challenge, c: code }))).toEqual(["MFA_CHALLENGE_INVALID"]); // challenge reused
  expect(codes(await server.graphql(VERIFY, { ch: await challengeFor(user), c: code }))).toEqual(["MFA_CODE_INVALID"]); // code replayed
  expect(codes(await server.graphql(VERIFY, { ch: await challengeFor(user), c: "000000" }))).toEqual(["MFA_CODE_INVALID"]);
  expect(codes(await server.graphql(VERIFY, { ch: "not.a.token", c: code }))).toEqual(["MFA_CHALLENGE_INVALID"]);
  expect(codes(await server.graphql(VERIFY, { ch: user.token, c: code }))).toEqual(["MFA_CHALLENGE_INVALID"]); // a session token is no challenge
});

test("step-up: an old session of an enrolled user needs stepUpMfa before creating an API key", async () => {
  const user = await enrolled();
  const org = await server.graphql(`mutation { createOrganization(input: {name: "Step Org"}) { organization { id } } }`, {}, user.token);
  const orgId = org.data.createOrganization.organization.id;
  await db.owner.query("update app_public.users set email_verified_at = now() where id = $1", [user.userId]);
  await db.owner.query("update app_private.sessions set aal2_at = now() - interval '16 minutes' where id = $1", [user.sessionId]);
  const CREATE_KEY = `mutation($o: UUID!) { createApiKey(input: {organizationId: $o, name: "k"}) { secret } }`;
  expect(codes(await server.graphql(CREATE_KEY, { o: orgId }, user.token))).toEqual(["MFA_STEP_UP_REQUIRED"]);
  expect(codes(await server.graphql(STEP_UP, { c: "123" }, user.token))).toEqual(["MFA_CODE_INVALID"]);
  const up = await server.graphql(STEP_UP, { c: await codeAt(user.secret, now) }, user.token);
  expect(up.errors).toBeUndefined();
  const key = await server.graphql(CREATE_KEY, { o: orgId }, user.token);
  expect(key.errors).toBeUndefined();
});

test("organization policy: a member's aal1 session sees nothing of it and is told why; after verifyMfa it sees it", async () => {
  const admin = await enrolled();
  const org = await server.graphql(`mutation { createOrganization(input: {name: "Strict Org"}) { organization { id } } }`, {}, admin.token);
  const orgId = org.data.createOrganization.organization.id;
  const member = await register(server);
  await db.owner.query("insert into app_public.organization_members (organization_id, user_id, role) values ($1, $2, 'member')", [orgId, member.userId]);
  const SET = `mutation($o: UUID!) { setOrganizationMfaRequired(input: {organizationId: $o, required: true, gracePeriodDays: 0}) { organization { mfaRequiredAt } } }`;
  const set = await server.graphql(SET, { o: orgId }, admin.token);
  expect(set.errors).toBeUndefined();
  const ORG = `query($o: UUID!) { organization(id: $o) { id } }`;
  const GAPS = `{ myOrganizationsRequiringMfa { organizationId } }`;
  expect((await server.graphql(ORG, { o: orgId }, member.token)).data.organization).toBeNull();
  expect((await server.graphql(GAPS, {}, member.token)).data.myOrganizationsRequiringMfa).toEqual([{ organizationId: orgId }]);
  const without = await server.graphql(`query($o: UUID!) { organizationMembersWithoutMfa(organizationId: $o) { userId } }`, { o: orgId }, admin.token);
  expect(without.data.organizationMembersWithoutMfa).toEqual([{ userId: member.userId }]);

  // the member enrols (this session becomes aal2 by confirming), and a fresh sign-in needs verifyMfa
  const e = await server.graphql(ENROLL, {}, member.token);
  const { factorId, secret } = e.data.enrollTotp;
  expect((await server.graphql(CONFIRM, { f: factorId, c: await codeAt(secret, now) }, member.token)).errors).toBeUndefined();
  expect((await server.graphql(ORG, { o: orgId }, member.token)).data.organization).toEqual({ id: orgId });
  now += 30;
  const session = (await server.graphql(VERIFY, { ch: await challengeFor(member), c: await codeAt(secret, now) })).data.verifyMfa.jwtToken;
  expect((await server.graphql(ORG, { o: orgId }, session)).data.organization).toEqual({ id: orgId });
  // a session pushed back to aal1 sees nothing again
  await db.owner.query("update app_private.sessions set aal = 'aal1' where id = $1", [(jwt.decode(session) as { session_id: string }).session_id]);
  expect((await server.graphql(ORG, { o: orgId }, session)).data.organization).toBeNull();
  // the last factor stays while the organization requires MFA
  const factors = await server.graphql(`{ myMfaFactors { id kind } }`, {}, member.token);
  expect(codes(await server.graphql(`mutation($id: UUID!) { removeMfaFactor(input: {id: $id}) { success } }`, { id: factors.data.myMfaFactors[0].id }, member.token))).toEqual(["LAST_MFA_FACTOR"]);
});

test("the operations in docs/mfa.md run as written", async () => {
  const doc = readFileSync(path.join(projectRoot, "docs", "mfa.md"), "utf8");
  const blocks = [...doc.matchAll(/```graphql\n([\s\S]*?)```/g)].map((m) => m[1]);
  const named = (name: string) => {
    const block = blocks.find((b) => b.startsWith(`${name}`));
    if (!block) throw new Error(`no block ${name}`);
    return block;
  };
  const ok = async (query: string, variables: Record<string, unknown>, token?: string) => {
    const r = await server.graphql(query, variables, token);
    expect(r.errors).toBeUndefined();
    return r.data;
  };
  const user = await register(server);
  const { enrollTotp } = await ok(named("mutation EnrollTotp"), {}, user.token);
  const { confirmTotp } = await ok(named("mutation ConfirmTotp"), { factorId: enrollTotp.factorId, code: await codeAt(enrollTotp.secret, now) }, user.token);
  expect(confirmTotp.recoveryCodes).toHaveLength(10);
  const listed = await ok(named("query MyMfaFactors"), {}, user.token);
  expect(listed.myMfaFactors).toHaveLength(1);
  expect(listed.mfaRecoveryCodesLeft).toBe(10);
  now += 30;
  const { authenticate } = await ok(named("mutation SignIn"), { email: user.email, password: user.password });
  const { verifyMfa } = await ok(named("mutation VerifyMfa"), { challenge: authenticate.jwtToken, code: await codeAt(enrollTotp.secret, now) });
  now += 30;
  expect((await ok(named("mutation StepUp"), { code: await codeAt(enrollTotp.secret, now) }, verifyMfa.jwtToken)).stepUpMfa.success).toBe(true);
  const org = await ok(`mutation { createOrganization(input: {name: "Doc Org"}) { organization { id } } }`, {}, verifyMfa.jwtToken);
  const organizationId = org.createOrganization.organization.id;
  expect((await ok(named("mutation RequireMfa"), { organizationId }, verifyMfa.jwtToken)).setOrganizationMfaRequired.organization.mfaRequiredAt).toBeTruthy();
  expect((await ok(named("query MfaGaps"), {}, verifyMfa.jwtToken)).myOrganizationsRequiringMfa).toEqual([]);
  expect((await ok(named("query MembersWithoutMfa"), { organizationId }, verifyMfa.jwtToken)).organizationMembersWithoutMfa).toEqual([]);
});
