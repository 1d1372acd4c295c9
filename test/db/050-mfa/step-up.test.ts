// step-up.sql: the listed operations need, from a user with a second factor, one given in this
// session within 15 minutes; users without a factor are not asked.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createOrganization, createUser } from "../../helpers/fixtures.ts";
import { codeOf, registerInSql } from "../../helpers/sql-accounts.ts";
import { enrolTotpInSql } from "../../helpers/mfa-sql.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

test("with a factor but no recent second factor, each guarded operation is MFA_STEP_UP_REQUIRED", async () => {
  const user = await registerInSql(db);
  const owner = await createUser(db);
  const org = await createOrganization(db, owner);
  await enrolTotpInSql(db, user);
  await enrolTotpInSql(db, owner);
  await db.owner.query("update app_private.sessions set aal2_at = now() - interval '16 minutes' where id = any($1)", [[user.sessionId, owner.sessionId]]);
  expect(await codeOf(db.queryAs(user, "select app_public.change_password($1, 'another horse')", [user.password]))).toBe("MFA_STEP_UP_REQUIRED");
  expect(await codeOf(db.queryAs(user, "select app_public.change_email('new@example.com', $1)", [user.password]))).toBe("MFA_STEP_UP_REQUIRED");
  expect(await codeOf(db.queryAs(user, "select app_public.delete_account($1)", [user.password]))).toBe("MFA_STEP_UP_REQUIRED");
  expect(await codeOf(db.queryAs(user, "select app_public.regenerate_mfa_recovery_codes()"))).toBe("MFA_STEP_UP_REQUIRED");
  expect(await codeOf(db.queryAs(owner, "select app_public.delete_organization($1)", [org.id]))).toBe("MFA_STEP_UP_REQUIRED");
  expect(await codeOf(db.queryAs(owner, "select app_public.transfer_ownership($1, $2)", [org.id, user.userId]))).toBe("MFA_STEP_UP_REQUIRED");
  expect(await codeOf(db.queryAs(owner, "select app_public.create_api_key($1, 'k')", [org.id]))).toBe("MFA_STEP_UP_REQUIRED");
  // within 15 minutes it passes
  await db.owner.query("update app_private.sessions set aal2_at = now() where id = $1", [owner.sessionId]);
  expect((await db.queryAs(owner, "select (app_public.create_api_key($1, 'k')).secret like 'tb_live_%' as ok", [org.id])).rows[0].ok).toBe(true);
});

test("a user without a factor is not asked", async () => {
  const user = await registerInSql(db);
  expect((await db.queryAs(user, "select app_public.change_password($1, 'another horse') as ok", [user.password])).rows[0].ok).toBe(true);
});
