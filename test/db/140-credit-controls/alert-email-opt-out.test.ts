// Each user turns the credit alert emails off and on for themselves
// (db/functions/140-credit-controls/alert-email-opt-out.sql); it reads back in their settings,
// is theirs only, and needs a signed-in user.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { twoTenants } from "../../helpers/fixtures.ts";
import { codeOf } from "../../helpers/codes.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

test("off and on again, for oneself only; null changes nothing; anonymous callers are refused", async () => {
  const { a } = await twoTenants(db);
  const mine = (as: typeof a.admin) =>
    db.queryAs(as, "select credit_alert_emails from app_public.my_settings()").then((r) => r.rows[0].credit_alert_emails);
  expect(await mine(a.admin)).toBe(true);
  const off = await db.queryAs(a.admin, "select user_id, credit_alert_emails from app_public.set_credit_alert_emails(false)");
  expect(off.rows).toEqual([{ user_id: a.admin.userId, credit_alert_emails: false }]);
  expect(await mine(a.admin)).toBe(false);
  expect(await mine(a.owner)).toBe(true);
  await db.queryAs(a.admin, "select app_public.set_credit_alert_emails(null)");
  expect(await mine(a.admin)).toBe(false);
  await db.queryAs(a.admin, "select app_public.set_credit_alert_emails(true)");
  expect(await mine(a.admin)).toBe(true);
  expect(await codeOf(db.queryAs(null, "select app_public.set_credit_alert_emails(false)"))).toMatch(/NOT_AUTHENTICATED|^42501/);
});
