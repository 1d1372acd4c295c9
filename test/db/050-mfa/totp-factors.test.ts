// totp-factors.sql: adding an unconfirmed TOTP factor (one waiting at a time), confirming it
// once (counted like any code), recovery codes with the first factor only.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { codeOf, registerInSql } from "../../helpers/sql-accounts.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

test("a factor is added unconfirmed, replaced by a new enrolment, confirmed once; the first brings ten recovery codes", async () => {
  const user = await registerInSql(db);
  const add = async () => (await db.queryAs(user, "select factor_id, email from app_hidden.add_totp_factor('v1.x', '')")).rows[0];
  const first = await add();
  expect(first.email).toBe(user.email);
  const second = await add();
  expect((await db.owner.query("select count(*)::int as n from app_private.mfa_factors where user_id = $1", [user.userId])).rows[0].n).toBe(1);
  expect(await codeOf(db.queryAs(user, "select app_hidden.totp_confirmation_attempt($1)", [first.factor_id]))).toBe("NOT_FOUND");
  expect((await db.queryAs(user, "select app_hidden.totp_confirmation_attempt($1) as s", [second.factor_id])).rows[0].s).toBe("v1.x");
  expect((await db.queryAs(user, "select app_public.my_mfa_factors()")).rows).toHaveLength(0); // unconfirmed: not a factor yet
  const codes = (await db.queryAs(user, "select app_hidden.confirm_totp_factor($1, 7) as c", [second.factor_id])).rows;
  expect(codes).toHaveLength(10);
  expect(await codeOf(db.queryAs(user, "select app_hidden.confirm_totp_factor($1, 8)", [second.factor_id]))).toBe("NOT_FOUND");
  expect((await db.queryAs(user, "select kind, name from app_public.my_mfa_factors()")).rows).toEqual([{ kind: "totp", name: "Authenticator app" }]);
  const another = await add();
  expect((await db.queryAs(user, "select app_hidden.confirm_totp_factor($1, 9) as c", [another.factor_id])).rows).toHaveLength(0);
});

test("anonymous callers cannot add factors", async () => {
  await expect(db.queryAs(null, "select app_hidden.add_totp_factor('v1.x', '')")).rejects.toThrow(/permission denied/);
});
