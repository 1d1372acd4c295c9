// mfa-challenges.sql: with a confirmed second factor, authenticate answers a single-use,
// five-minute challenge for one user instead of a session; a checked code (TOTP step after the
// last accepted one) takes it once and opens an aal2 session.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { codeOf, registerInSql } from "../../helpers/sql-accounts.ts";
import { enrolTotpInSql, signInInSql } from "../../helpers/mfa-sql.ts";
import { twoTenants } from "../../helpers/fixtures.ts";
import { connection, verifiedDomain } from "../040-organization-sso/sso.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const accept = (challengeId: string | null, factorId: string | null, step: number | null, recovery: string | null = null, actor = null as any) =>
  db.queryAs(actor, "select (t).* from app_hidden.accept_mfa_code($1, $2, $3, $4) t", [challengeId, factorId, step, recovery]).then((r) => r.rows[0]);

test("without a factor authenticate opens an aal1 session; with one it answers a challenge that opens no session", async () => {
  const user = await registerInSql(db);
  const plain = await signInInSql(db, user.email, user.password);
  expect(plain.role).toBe("app_user");
  expect((await db.owner.query("select aal from app_private.sessions where id = $1", [plain.session_id])).rows[0].aal).toBe("aal1");

  await enrolTotpInSql(db, user);
  const before = (await db.owner.query("select count(*)::int as n from app_private.sessions where user_id = $1", [user.userId])).rows[0].n;
  const challenge = await signInInSql(db, user.email, user.password);
  expect(challenge).toEqual({ role: "mfa_challenge", sub: null, session_id: expect.any(String), exp: expect.any(String) });
  expect((await db.owner.query("select count(*)::int as n from app_private.sessions where user_id = $1", [user.userId])).rows[0].n).toBe(before);
  // the challenge's id is no session: acting with it as a session is INVALID_TOKEN
  expect(await codeOf(db.queryAs({ userId: user.userId, sessionId: challenge.session_id }, "select 1"))).toBe("INVALID_TOKEN");
});

test("a matched time step takes the challenge once and opens an aal2 session; the same step again is refused (replay)", async () => {
  const user = await registerInSql(db);
  const { factorId } = await enrolTotpInSql(db, user, 1000);
  const c1 = await signInInSql(db, user.email, user.password);
  const factors = (await db.queryAs(null, "select * from app_hidden.mfa_code_attempt($1)", [c1.session_id])).rows;
  expect(factors).toEqual([{ factor_id: factorId, secret_encrypted: "v1.encrypted", last_step: "1000" }]);
  expect(await codeOf(accept(c1.session_id, factorId, 1000))).toBe("MFA_CODE_INVALID"); // the enrolment's step
  const token = await accept(c1.session_id, factorId, 1001);
  expect(token).toMatchObject({ role: "app_user", sub: user.userId });
  const session = (await db.owner.query("select aal, aal2_at is not null as stepped, method from app_private.sessions where id = $1", [token.session_id])).rows[0];
  expect(session).toEqual({ aal: "aal2", stepped: true, method: "password" });
  expect(await codeOf(accept(c1.session_id, factorId, 1002))).toBe("MFA_CHALLENGE_INVALID"); // challenge reused
  const c2 = await signInInSql(db, user.email, user.password);
  expect(await codeOf(accept(c2.session_id, factorId, 1001))).toBe("MFA_CODE_INVALID"); // replayed step
  expect((await accept(c2.session_id, factorId, 1002)).role).toBe("app_user");
});

test("a challenge for one user cannot take another's factor, and an expired one is refused", async () => {
  const alice = await registerInSql(db);
  const bob = await registerInSql(db);
  const { factorId: aliceFactor } = await enrolTotpInSql(db, alice);
  await enrolTotpInSql(db, bob);
  const bobChallenge = await signInInSql(db, bob.email, bob.password);
  expect(await codeOf(accept(bobChallenge.session_id, aliceFactor, 5000))).toBe("MFA_CODE_INVALID");
  const aliceChallenge = await signInInSql(db, alice.email, alice.password);
  await db.owner.query("update app_private.mfa_challenges set expires_at = now() - interval '1 second' where id = $1", [aliceChallenge.session_id]);
  expect(await codeOf(db.queryAs(null, "select * from app_hidden.mfa_code_attempt($1)", [aliceChallenge.session_id]))).toBe("MFA_CHALLENGE_INVALID");
  expect(await codeOf(accept(aliceChallenge.session_id, aliceFactor, 5000))).toBe("MFA_CHALLENGE_INVALID");
  expect(await codeOf(accept("00000000-0000-4000-8000-000000000000", aliceFactor, 5000))).toBe("MFA_CHALLENGE_INVALID");
});

test("code attempts are limited per account: the eleventh in the window is TOO_MANY_ATTEMPTS", async () => {
  const user = await registerInSql(db);
  await enrolTotpInSql(db, user);
  const c = await signInInSql(db, user.email, user.password);
  for (let i = 0; i < 10; i++) await db.queryAs(null, "select * from app_hidden.mfa_code_attempt($1)", [c.session_id]);
  expect(await codeOf(db.queryAs(null, "select * from app_hidden.mfa_code_attempt($1)", [c.session_id]))).toBe("TOO_MANY_ATTEMPTS");
});

test("step-up: a signed-in caller's checked code raises its session to aal2", async () => {
  const user = await registerInSql(db);
  const { factorId } = await enrolTotpInSql(db, user);
  // a session older than the factor, or one whose second factor is long past
  await db.owner.query("update app_private.sessions set aal = 'aal1', aal2_at = null where id = $1", [user.sessionId]);
  expect(await accept(null, factorId, 2000, null, user)).toEqual({ role: null, sub: null, session_id: null, exp: null });
  expect((await db.owner.query("select aal from app_private.sessions where id = $1", [user.sessionId])).rows[0].aal).toBe("aal2");
});

test("a provider sign-in of an account with a factor answers a challenge; its session records the provider and identity", async () => {
  const { rows } = await db.owner.query(
    "select app_private.sign_in_with_identity('google', 'https://issuer.example.com', 'sub-mfa-1', 'mfa-provider@example.com', true, 'Pro', null) as id",
  );
  const identityId = rows[0].id;
  const userId = (await db.owner.query("select user_id from app_private.identities where id = $1", [identityId])).rows[0].user_id;
  const sessionId = (await db.owner.query("select (app_private.start_session($1)).session_id as id", [userId])).rows[0].id;
  const { factorId } = await enrolTotpInSql(db, { userId, sessionId, email: "mfa-provider@example.com" }, 3000);
  const code = (await db.owner.query("select app_private.issue_sign_in_code($1) as code", [identityId])).rows[0].code;
  const challenge = (await db.queryAs(null, "select (t).* from app_public.exchange_sign_in_code($1) t", [code])).rows[0];
  expect(challenge).toMatchObject({ role: "mfa_challenge", sub: null });
  const token = await accept(challenge.session_id, factorId, 3001);
  const row = (await db.owner.query("select method, identity_id, aal from app_private.sessions where id = $1", [token.session_id])).rows[0];
  expect(row).toEqual({ method: "provider", identity_id: identityId, aal: "aal2" });
});

test("an SSO sign-in of an account with a factor: the challenge keeps the connection, so the aal2 session sees the SSO-required organization", async () => {
  const { a } = await twoTenants(db);
  // (a seat for the just-in-time member on the free plan)
  await db.owner.query("delete from app_public.organization_members where organization_id = $1 and role = 'member'", [a.org.id]);
  const conn = await connection(db, a.admin, a.org.id);
  const { domain } = await verifiedDomain(db, a.admin, a.org.id);
  await db.queryAs(a.admin, "select app_public.set_organization_sso($1, true, 'member')", [a.org.id]);
  const email = `mfa.sso@${domain}`;
  const identityId = (await db.owner.query("select app_private.sign_in_with_sso($1, 'https://idp.example.org', 'sub-mfa-sso', $2, true, 'Mfa Sso') as id",
    [conn, email])).rows[0].id;
  const userId = (await db.owner.query("select user_id from app_private.identities where id = $1", [identityId])).rows[0].user_id;
  const sessionId = (await db.owner.query("select (app_private.start_session($1)).session_id as id", [userId])).rows[0].id;
  const { factorId } = await enrolTotpInSql(db, { userId, sessionId, email }, 5000);

  const code = (await db.owner.query("select app_private.issue_sso_sign_in_code($1, $2) as code", [identityId, conn])).rows[0].code;
  const challenge = (await db.queryAs(null, "select (t).* from app_public.exchange_sign_in_code($1) t", [code])).rows[0];
  expect(challenge).toMatchObject({ role: "mfa_challenge", sub: null });
  const token = await accept(challenge.session_id, factorId, 5001);
  const row = (await db.owner.query("select method, sso_connection_id, aal from app_private.sessions where id = $1", [token.session_id])).rows[0];
  expect(row).toEqual({ method: "sso", sso_connection_id: conn, aal: "aal2" });
  const seen = await db.queryAs({ userId, sessionId: token.session_id }, "select id from app_public.organizations");
  expect(seen.rows).toEqual([{ id: a.org.id }]);
});
