// exchangeSignInCode (sign-in-codes.sql): a one-time code for the same jwtToken a password sign-in
// gives; once, for one minute; the session it opens is an ordinary session (listed, revocable)
// that records it was made through a provider.

import { randomBytes } from "node:crypto";
import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { codeOf } from "../../helpers/sql-accounts.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

async function identityAndCode(): Promise<{ identityId: string; userId: string; code: string }> {
  const { rows } = await db.owner.query(
    "select app_private.sign_in_with_identity('google', 'https://issuer.example.com', $1, $2, true, 'Cody', null) as id",
    [`sub-${randomBytes(6).toString("hex")}`, `cody-${randomBytes(4).toString("hex")}@example.com`],
  );
  const identityId = rows[0].id;
  const userId = (await db.owner.query("select user_id from app_private.identities where id = $1", [identityId])).rows[0].user_id;
  const code = (await db.owner.query("select app_private.issue_sign_in_code($1) as code", [identityId])).rows[0].code;
  return { identityId, userId, code };
}
const exchange = (code: string) =>
  db.queryAs(null, "select (t).* from app_public.exchange_sign_in_code($1) t", [code]).then((r) => r.rows[0]);

test("a code gives a session token once; the session records its provider identity, is listed and revocable", async () => {
  const { identityId, userId, code } = await identityAndCode();
  const token = await exchange(code);
  expect(token).toEqual({ role: "app_user", sub: userId, session_id: expect.any(String), exp: expect.any(String) });
  const session = (await db.owner.query("select method, identity_id from app_private.sessions where id = $1", [token.session_id])).rows[0];
  expect(session).toEqual({ method: "provider", identity_id: identityId });
  const actor = { userId, sessionId: token.session_id };
  expect((await db.queryAs(actor, "select id, current from app_public.my_sessions()")).rows).toEqual([{ id: token.session_id, current: true }]);
  expect((await db.queryAs(actor, "select app_public.revoke_session($1) as ok", [token.session_id])).rows[0].ok).toBe(true);
  expect(await codeOf(exchange(code))).toBe("SIGN_IN_CODE_INVALID"); // replayed code
});

test("an expired, unknown or oversized code is SIGN_IN_CODE_INVALID and opens nothing", async () => {
  const { userId, code } = await identityAndCode();
  await db.owner.query("update app_private.sign_in_codes set expires_at = now() - interval '1 second' where code_hash = digest($1, 'sha256')", [code]);
  expect(await codeOf(exchange(code))).toBe("SIGN_IN_CODE_INVALID");
  expect(await codeOf(exchange("nope"))).toBe("SIGN_IN_CODE_INVALID");
  expect(await codeOf(exchange("x".repeat(100_000)))).toBe("SIGN_IN_CODE_INVALID");
  expect((await db.owner.query("select count(*)::int as n from app_private.sessions where user_id = $1", [userId])).rows[0].n).toBe(0);
});

test("a code for an account deleted since is SIGN_IN_CODE_INVALID; password sessions record 'password'", async () => {
  const { userId, code } = await identityAndCode();
  await db.owner.query("update app_public.users set deleted_at = now() where id = $1", [userId]);
  expect(await codeOf(exchange(code))).toBe("SIGN_IN_CODE_INVALID");
  const { rows } = await db.queryAs(null, "select (t).session_id from app_public.register($1, 'correct horse', 'P') t", [`pw-${randomBytes(4).toString("hex")}@example.com`]);
  expect((await db.owner.query("select method from app_private.sessions where id = $1", [rows[0].session_id])).rows[0].method).toBe("password");
});
