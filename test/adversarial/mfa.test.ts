// Attacks on multi-factor sign-in (db/functions/050-mfa, server/mfa/), each kept as a test: a
// replayed TOTP code, a recovery code used twice, a challenge reused, used for another user,
// expired, or sent as a session token to other operations, a session token given as a
// challenge, brute-forcing codes, removing the last factor under an organization that requires
// MFA, and downgrading an aal2 session. (Passkey attacks: test/e2e/passkeys-browser.test.ts.)

import jwt from "jsonwebtoken";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { startTestServer, TEST_JWT, type TestServer } from "../helpers/server.ts";
import { codes, relaxAttemptLimits } from "../helpers/accounts.ts";
import { challengeFor, codeAt, enrolledUser, MFA_TEST_START, STEP_UP, VERIFY, type Clock } from "../helpers/mfa-api.ts";

let db: TestDatabase;
let server: TestServer;
const clock: Clock = { now: MFA_TEST_START };
beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db, { mfa: { secretKey: null, totpIssuer: "tenantbase", appUrl: "http://localhost:3000", now: () => clock.now } });
  await relaxAttemptLimits(db);
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

const enrolled = () => enrolledUser(server, clock);
const challenge = (user: { email: string; password: string }) => challengeFor(server, user);

test("a TOTP code is accepted once: replayed (same step) or older (previous step) it is refused", async () => {
  const user = await enrolled();
  const code = await codeAt(user.secret, clock.now);
  expect((await server.graphql(VERIFY, { ch: await challenge(user), c: code })).errors).toBeUndefined();
  expect(codes(await server.graphql(VERIFY, { ch: await challenge(user), c: code }))).toEqual(["MFA_CODE_INVALID"]);
  const older = await codeAt(user.secret, clock.now - 30); // still inside the ±1 window, but before the last step used
  expect(codes(await server.graphql(VERIFY, { ch: await challenge(user), c: older }))).toEqual(["MFA_CODE_INVALID"]);
});

test("a recovery code works once; another user's code or recovery code does not take a challenge", async () => {
  const alice = await enrolled();
  const bob = await enrolled();
  expect((await server.graphql(VERIFY, { ch: await challenge(alice), c: alice.recoveryCodes[0] })).errors).toBeUndefined();
  expect(codes(await server.graphql(VERIFY, { ch: await challenge(alice), c: alice.recoveryCodes[0] }))).toEqual(["MFA_CODE_INVALID"]);
  expect(codes(await server.graphql(VERIFY, { ch: await challenge(alice), c: bob.recoveryCodes[0] }))).toEqual(["MFA_CODE_INVALID"]);
  expect(codes(await server.graphql(VERIFY, { ch: await challenge(alice), c: await codeAt(bob.secret, clock.now) }))).toEqual(["MFA_CODE_INVALID"]);
});

test("a challenge works once and only as a challenge: reused, expired, forged, or a session token in its place", async () => {
  const user = await enrolled();
  const ch = await challenge(user);
  clock.now += 30;
  expect((await server.graphql(VERIFY, { ch, c: await codeAt(user.secret, clock.now) })).errors).toBeUndefined();
  clock.now += 30;
  expect(codes(await server.graphql(VERIFY, { ch, c: await codeAt(user.secret, clock.now) }))).toEqual(["MFA_CHALLENGE_INVALID"]);

  const expired = await challenge(user);
  await db.owner.query("update app_private.mfa_challenges set expires_at = now() - interval '1 second' where id = $1", [(jwt.decode(expired) as { session_id: string }).session_id]);
  expect(codes(await server.graphql(VERIFY, { ch: expired, c: user.recoveryCodes[1] }))).toEqual(["MFA_CHALLENGE_INVALID"]);

  // a challenge id signed with another key, and a session token given as a challenge
  const claims = jwt.decode(await challenge(user)) as Record<string, unknown>;
  const forged = jwt.sign(claims, "another-secret-another-secret-another", { algorithm: "HS256" });
  expect(codes(await server.graphql(VERIFY, { ch: forged, c: user.recoveryCodes[1] }))).toEqual(["MFA_CHALLENGE_INVALID"]);
  expect(codes(await server.graphql(VERIFY, { ch: user.token, c: user.recoveryCodes[1] }))).toEqual(["MFA_CHALLENGE_INVALID"]);
  // the recovery code was not spent by any of these
  expect((await server.graphql(VERIFY, { ch: await challenge(user), c: user.recoveryCodes[1] })).errors).toBeUndefined();
});

test("a challenge sent as a token reaches no operation", async () => {
  const user = await enrolled();
  const ch = await challenge(user);
  for (const operation of [
    `{ currentUser { id } }`,
    `{ mySessions { id } }`,
    `{ myMfaFactors { id } }`,
    `mutation { createOrganization(input: {name: "X"}) { organization { id } } }`,
    `mutation { logout(input: {}) { success } }`,
    `mutation { enrollTotp(input: {}) { factorId } }`,
  ]) {
    const r = await server.graphql(operation, {}, ch);
    expect([r.status, codes(r)]).toEqual([401, ["INVALID_TOKEN"]]);
  }
  const stepUp = await server.graphql(STEP_UP, { c: user.recoveryCodes[2] }, ch);
  expect([stepUp.status, codes(stepUp)]).toEqual([401, ["INVALID_TOKEN"]]);
  expect((await db.owner.query("select count(*)::int as n from app_private.mfa_recovery_codes where user_id = $1 and used_at is not null", [user.userId])).rows[0].n).toBe(0);
});

test("brute force: past the per-account limit every code is TOO_MANY_ATTEMPTS, the right one too", async () => {
  await db.owner.query(`update app_private.account_settings set attempt_limits = attempt_limits || '{"mfa_code": {"user": {"max": 6, "seconds": 900}}}'::jsonb`);
  try {
    const user = await enrolled(); // confirmTotp counted one
    const seen: string[] = [];
    for (let i = 0; i < 7; i++) {
      seen.push(...(codes(await server.graphql(VERIFY, { ch: await challenge(user), c: String(100000 + i) })) as string[]));
    }
    expect(seen).toEqual([...Array(5).fill("MFA_CODE_INVALID"), "TOO_MANY_ATTEMPTS", "TOO_MANY_ATTEMPTS"]);
    expect(codes(await server.graphql(VERIFY, { ch: await challenge(user), c: await codeAt(user.secret, clock.now) }))).toEqual(["TOO_MANY_ATTEMPTS"]);
    expect(codes(await server.graphql(VERIFY, { ch: await challenge(user), c: user.recoveryCodes[0] }))).toEqual(["TOO_MANY_ATTEMPTS"]);
  } finally {
    await relaxAttemptLimits(db);
  }
});

test("the last factor cannot be removed under an organization that requires MFA", async () => {
  const user = await enrolled();
  const org = await server.graphql(`mutation { createOrganization(input: {name: "Strict"}) { organization { id } } }`, {}, user.token);
  const organizationId = org.data.createOrganization.organization.id;
  const set = await server.graphql(`mutation($o: UUID!) { setOrganizationMfaRequired(input: {organizationId: $o, required: true, gracePeriodDays: 0}) { organization { id } } }`, { o: organizationId }, user.token);
  expect(set.errors).toBeUndefined();
  const factors = await server.graphql(`{ myMfaFactors { id } }`, {}, user.token);
  const remove = await server.graphql(`mutation($id: UUID!) { removeMfaFactor(input: {id: $id}) { success } }`, { id: factors.data.myMfaFactors[0].id }, user.token);
  expect(codes(remove)).toEqual(["LAST_MFA_FACTOR"]);
});

test("downgrading an aal2 session: its level is not the client's to set, and once aal1 it sees no MFA organization", async () => {
  const user = await enrolled();
  const org = await server.graphql(`mutation { createOrganization(input: {name: "Strict 2"}) { organization { id } } }`, {}, user.token);
  const organizationId = org.data.createOrganization.organization.id;
  await server.graphql(`mutation($o: UUID!) { setOrganizationMfaRequired(input: {organizationId: $o, required: true, gracePeriodDays: 0}) { organization { id } } }`, { o: organizationId }, user.token);
  // a token whose claims say more than its session (an edited aal claim) changes nothing: the level is the session's row
  const edited = jwt.sign({ ...(jwt.decode(user.token) as object), aal: "aal2" }, TEST_JWT.secret, { algorithm: "HS256" });
  await db.owner.query("update app_private.sessions set aal = 'aal1', aal2_at = null where id = $1", [user.sessionId]);
  const ORG = `query($o: UUID!) { organization(id: $o) { id } }`;
  expect((await server.graphql(ORG, { o: organizationId }, edited)).data.organization).toBeNull();
  expect((await server.graphql(ORG, { o: organizationId }, user.token)).data.organization).toBeNull();
  clock.now += 30;
  expect((await server.graphql(STEP_UP, { c: await codeAt(user.secret, clock.now) }, user.token)).errors).toBeUndefined();
  expect((await server.graphql(ORG, { o: organizationId }, user.token)).data.organization).toEqual({ id: organizationId });
});
