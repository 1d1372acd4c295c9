// Check results (db/functions/400-operations/checks.sql): record_check keeps the latest result of
// each named check, which /readyz and /metrics read; app roles can neither call it nor read them.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createUser } from "../../helpers/fixtures.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const checks = async (name: string) =>
  (await db.owner.query("select name, ok, details, checked_at from app_private.operations_checks where name = $1", [name])).rows;

test("one row per check: the latest result replaces the one before", async () => {
  await db.owner.query("select app_private.record_check('backup', false, '{\"error\": \"disk full\"}')");
  const [first] = await checks("backup");
  expect(first).toMatchObject({ name: "backup", ok: false, details: { error: "disk full" } });
  await db.owner.query("select app_private.record_check('backup', true, '{\"bytes\": 1024}')");
  const after = await checks("backup");
  expect(after).toHaveLength(1);
  expect(after[0]).toMatchObject({ ok: true, details: { bytes: 1024 } });
  expect(after[0].checked_at.getTime()).toBeGreaterThanOrEqual(first.checked_at.getTime());
  // details default to {} and a null is stored as {}
  await db.owner.query("select app_private.record_check('ledger', true)");
  await db.owner.query("select app_private.record_check('restore', true, null)");
  expect((await checks("ledger"))[0].details).toEqual({});
  expect((await checks("restore"))[0].details).toEqual({});
});

test("app roles can neither record nor read checks", async () => {
  const user = await createUser(db);
  for (const actor of [user, null]) {
    await expect(db.queryAs(actor, "select app_private.record_check('backup', true)")).rejects.toMatchObject({ code: "42501" });
    await expect(db.queryAs(actor, "select * from app_private.operations_checks")).rejects.toMatchObject({ code: "42501" });
  }
});
