// mfa-factors.sql: listing and removing factors (only your own; recovery codes go with the last).

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { codeOf, registerInSql } from "../../helpers/sql-accounts.ts";
import { enrolTotpInSql } from "../../helpers/mfa-sql.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

test("another user's factor is NOT_FOUND; removing the last factor drops the recovery codes", async () => {
  const alice = await registerInSql(db);
  const bob = await registerInSql(db);
  const { factorId } = await enrolTotpInSql(db, alice);
  await enrolTotpInSql(db, bob);
  expect(await codeOf(db.queryAs(bob, "select app_public.remove_mfa_factor($1)", [factorId]))).toBe("NOT_FOUND");
  expect((await db.queryAs(bob, "select count(*)::int as n from app_public.my_mfa_factors()")).rows[0].n).toBe(1);
  expect((await db.queryAs(alice, "select app_public.remove_mfa_factor($1) as ok", [factorId])).rows[0].ok).toBe(true);
  expect((await db.queryAs(alice, "select app_public.mfa_recovery_codes_left() as n")).rows[0].n).toBe(0);
});
