// passkeys.sql: challenges single use, five minutes, bound to their user and purpose; the
// counter moves only forward; an assertion's credential must be the challenge user's. (The
// WebAuthn verification itself runs in a real browser: test/e2e/passkeys-browser.test.ts.)

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { codeOf, registerInSql } from "../../helpers/sql-accounts.ts";
import { signInInSql } from "../../helpers/mfa-sql.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const RP = ["localhost", "http://localhost:3000"];

async function withPasskey(credentialId: string) {
  const user = await registerInSql(db);
  await db.queryAs(user, "select * from app_hidden.start_passkey_challenge('registration', 'c-reg', $1, $2, null)", RP);
  const { rows } = await db.queryAs(user, "select * from app_hidden.add_passkey_factor($1, '\\x01'::bytea, 5, '{internal}', 'singleDevice', false, null)", [credentialId]);
  return { ...user, factorId: rows[0].factor_id as string, recoveryCodes: rows.map((r) => r.recovery_code) };
}

test("a registered passkey is a factor with recovery codes; a credential registers once", async () => {
  const user = await withPasskey("cred-a");
  expect(user.recoveryCodes).toHaveLength(10);
  expect((await db.queryAs(user, "select kind, name from app_public.my_mfa_factors()")).rows).toEqual([{ kind: "passkey", name: "Passkey" }]);
  const other = await registerInSql(db);
  expect(await codeOf(db.queryAs(other, "select * from app_hidden.add_passkey_factor('cred-a', '\\x01'::bytea, 0, '{}', 'singleDevice', false, null)"))).toBe("PASSKEY_ALREADY_REGISTERED");
});

test("a second-factor challenge is single use, for its MFA challenge's user; counters only go forward", async () => {
  const alice = await withPasskey("cred-alice");
  const bob = await withPasskey("cred-bob");
  const mfa = await signInInSql(db, alice.email, alice.password);
  const start = (await db.queryAs(null, "select * from app_hidden.start_passkey_challenge('second_factor', 'c1', $1, $2, $3)", [...RP, mfa.session_id])).rows[0];
  expect(start.credential_ids).toEqual(["cred-alice"]);
  const take = () => db.queryAs(null, "select * from app_hidden.take_passkey_challenge($1, 'second_factor')", [start.challenge_id]);
  expect((await take()).rows[0]).toMatchObject({ challenge: "c1", user_id: alice.userId });
  expect(await codeOf(take())).toBe("MFA_CHALLENGE_INVALID");
  // Bob's credential on Alice's challenge
  expect(await codeOf(db.queryAs(null, "select app_hidden.accept_passkey($1, $2, 6, false)", [start.challenge_id, bob.factorId]))).toBe("MFA_CODE_INVALID");
  // a counter that did not move forward
  expect(await codeOf(db.queryAs(null, "select app_hidden.accept_passkey($1, $2, 5, false)", [start.challenge_id, alice.factorId]))).toBe("MFA_CODE_INVALID");
  const token = (await db.queryAs(null, "select (t).* from app_hidden.accept_passkey($1, $2, 6, false) t", [start.challenge_id, alice.factorId])).rows[0];
  expect(token).toMatchObject({ role: "app_user", sub: alice.userId });
});

test("an expired challenge, or another user's registration challenge, cannot be taken", async () => {
  const user = await registerInSql(db);
  const other = await registerInSql(db);
  const reg = (await db.queryAs(user, "select * from app_hidden.start_passkey_challenge('registration', 'c2', $1, $2, null)", RP)).rows[0];
  expect(await codeOf(db.queryAs(other, "select * from app_hidden.take_passkey_challenge($1, 'registration')", [reg.challenge_id]))).toBe("MFA_CHALLENGE_INVALID");
  await db.owner.query("update app_private.passkey_challenges set expires_at = now() - interval '1 second' where id = $1", [reg.challenge_id]);
  expect(await codeOf(db.queryAs(user, "select * from app_hidden.take_passkey_challenge($1, 'registration')", [reg.challenge_id]))).toBe("MFA_CHALLENGE_INVALID");
});

test("passkey challenges are limited per client address (TOO_MANY_ATTEMPTS), so nobody fills the table", async () => {
  await db.owner.query(`update app_private.account_settings set attempt_limits = attempt_limits || '{"passkey_challenge": {"address": {"max": 3, "seconds": 900}}}'::jsonb`);
  const start = () =>
    db.as(null, async (c) => {
      await c.query("select set_config('tenantbase.client_address', '203.0.113.7', true)");
      return c.query("select * from app_hidden.start_passkey_challenge('sign_in', 'c', $1, $2, null)", RP);
    });
  for (let i = 0; i < 3; i++) await start();
  expect(await codeOf(start())).toBe("TOO_MANY_ATTEMPTS");
});
