// The ledger (db/functions/110-credits/ledger.sql): append-only for every role, balances kept
// with it, amounts and idempotency keys checked, every organization with its account.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createOrganization, createUser, twoTenants, type TestUser } from "../../helpers/fixtures.ts";
import { codeOf, UNKNOWN } from "../../helpers/codes.ts";
import { creditHelpers } from "../../helpers/credits.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const { account, ledgerCount, expectConsistent, emptyOrganization, reserve, capture, release } = creditHelpers(() => db);

test("the ledger is append-only for every role, the owner included", async () => {
  const { org, owner } = await emptyOrganization();
  await expect(db.owner.query("update app_public.credit_ledger set available_delta = 1000 where organization_id = $1", [org.id])).rejects.toThrow(/append-only/);
  await expect(db.owner.query("delete from app_public.credit_ledger where organization_id = $1", [org.id])).rejects.toThrow(/append-only/);
  await expect(db.owner.query("truncate app_public.credit_ledger cascade")).rejects.toThrow(/append-only/);
  await expect(db.queryAs(owner, "delete from app_public.credit_ledger")).rejects.toThrow(/permission denied/);
  await expect(db.queryAs(owner, "insert into app_public.credit_ledger (organization_id, kind, available_delta, reserved_delta, available_after, reserved_after) values ($1, 'grant', 5, 0, 5, 0)", [org.id])).rejects.toThrow(/permission denied/);
  await expect(db.queryAs(owner, "update app_public.credit_accounts set available = 1000000")).rejects.toThrow(/permission denied/);
  // available can never go below zero, whoever writes
  await expect(db.owner.query("update app_public.credit_accounts set available = -1 where organization_id = $1", [org.id])).rejects.toThrow(/credit_accounts_available_check/);
});
