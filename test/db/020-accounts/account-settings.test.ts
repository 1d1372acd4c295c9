// app_private.account_settings(): the one row the server writes at start-up, readable by the
// owner only.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { writeAccountSettings } from "../../../db/account-settings.ts";
import { accountsConfig } from "../../../core/config.ts";
import { createUser } from "../../helpers/fixtures.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

test("the server writes the environment's settings; SQL reads them", async () => {
  await writeAccountSettings(db.owner, accountsConfig({ PASSWORD_RESET_TTL_SECONDS: "600", VERIFIED_EMAIL_REQUIRED_FOR: "none", RATE_LIMIT_AUTHENTICATE_EMAIL: "3/60" }));
  const { rows } = await db.owner.query(
    "select extract(epoch from (s).reset_token_ttl)::int as reset, (s).verified_email_required_for as req, (s).attempt_limits -> 'authenticate' -> 'email' as auth from app_private.account_settings() s",
  );
  expect(rows[0]).toEqual({ reset: 600, req: [], auth: { max: 3, seconds: 60, maxDelay: 30 } });
  await writeAccountSettings(db.owner, accountsConfig({}));
  const again = await db.owner.query("select extract(epoch from (s).reset_token_ttl)::int as reset from app_private.account_settings() s");
  expect(again.rows[0].reset).toBe(3600);
});

test("app roles cannot read or change the settings", async () => {
  const user = await createUser(db);
  for (const actor of [null, user]) {
    await expect(db.queryAs(actor, "select * from app_private.account_settings")).rejects.toThrow(/permission denied/);
    await expect(db.queryAs(actor, "select app_private.account_settings()")).rejects.toThrow(/permission denied/);
  }
});
