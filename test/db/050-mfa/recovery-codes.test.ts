// recovery-codes.sql: ten codes with the first factor, shown once, each used once; regenerating
// replaces them all.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { codeOf, registerInSql } from "../../helpers/sql-accounts.ts";
import { enrolTotpInSql, signInInSql } from "../../helpers/mfa-sql.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const useCode = (challengeId: string, code: string) =>
  db.queryAs(null, "select (t).* from app_hidden.accept_mfa_code($1, null, null, $2) t", [challengeId, code]).then((r) => r.rows[0]);

test("a recovery code signs in once; a regenerated set replaces the old one", async () => {
  const user = await registerInSql(db);
  const { recoveryCodes } = await enrolTotpInSql(db, user);
  expect(recoveryCodes).toHaveLength(10);
  expect(new Set(recoveryCodes).size).toBe(10);
  expect(recoveryCodes[0]).toMatch(/^[a-z2-7]{5}-[a-z2-7]{5}$/);
  expect((await useCode((await signInInSql(db, user.email, user.password)).session_id, recoveryCodes[0].toUpperCase())).role).toBe("app_user");
  expect(await codeOf(useCode((await signInInSql(db, user.email, user.password)).session_id, recoveryCodes[0]))).toBe("MFA_CODE_INVALID");
  expect((await db.queryAs(user, "select app_public.mfa_recovery_codes_left() as n")).rows[0].n).toBe(9);
  const fresh = (await db.queryAs(user, "select app_public.regenerate_mfa_recovery_codes() as code")).rows.map((r) => r.code);
  expect(fresh).toHaveLength(10);
  expect(await codeOf(useCode((await signInInSql(db, user.email, user.password)).session_id, recoveryCodes[1]))).toBe("MFA_CODE_INVALID");
  expect((await useCode((await signInInSql(db, user.email, user.password)).session_id, fresh[1].replace("-", " "))).role).toBe("app_user");
});
