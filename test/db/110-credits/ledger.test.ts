// The ledger (db/functions/110-credits/ledger.sql): append-only for every role, balances kept
// with it, amounts and idempotency keys checked, every organization with its account.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createOrganization, createUser } from "../../helpers/fixtures.ts";
import { codeOf } from "../../helpers/codes.ts";
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

test("every entry records the balances after it, which add up from the deltas", async () => {
  const { org, owner } = await emptyOrganization();
  await db.owner.query("select app_private.grant_credits($1, 30, 'purchase', null, null)", [org.id]);
  const r = await reserve(owner, org.id, 12, "k1");
  await capture(owner, r.id, 5);
  const r2 = await reserve(owner, org.id, 3, "k2");
  await release(owner, r2.id);
  const { rows } = await db.owner.query(
    `select seq, available_after::int, reserved_after::int,
            (sum(available_delta) over w)::int as available_sum, (sum(reserved_delta) over w)::int as reserved_sum
     from app_public.credit_ledger where organization_id = $1
     window w as (order by seq) order by seq`,
    [org.id],
  );
  expect(rows.length).toBeGreaterThanOrEqual(7);
  for (const row of rows) expect([row.available_after, row.reserved_after]).toEqual([row.available_sum, row.reserved_sum]);
  expect(await account(org.id)).toEqual({ available: rows.at(-1).available_after, reserved: rows.at(-1).reserved_after });
  expect(await ledgerCount(org.id)).toBe(rows.length);
  await expectConsistent();
});

test("amounts and idempotency keys: whole numbers from 1 to 10^12, keys of 1 to 200 characters", async () => {
  const amount = (value: unknown) => db.owner.query("select app_hidden.assert_valid_amount($1) as v", [value]).then((r) => r.rows[0].v);
  expect(await amount("1")).toBe("1");
  expect(await amount("1000000000000")).toBe("1000000000000");
  for (const bad of ["0", "-1", "1.5", "1000000000001", "1e30", null]) expect(await codeOf(amount(bad))).toBe("INVALID_AMOUNT");
  const key = (value: unknown, required: boolean) => db.owner.query("select app_hidden.assert_valid_idempotency_key($1, $2)", [value, required]);
  for (const good of ["k", "x".repeat(200)]) await key(good, true);
  await key(null, false);
  for (const [bad, required] of [[null, true], ["", false], ["x".repeat(201), false]] as const) {
    expect(await codeOf(key(bad, required))).toBe("INVALID_IDEMPOTENCY_KEY");
  }
});

test("every organization has its account from the start; erasing an organization takes its ledger with it", async () => {
  const owner = await createUser(db);
  const org = await createOrganization(db, owner, "Erased");
  expect(await account(org.id)).toEqual({ available: 100, reserved: 0 });
  expect(await ledgerCount(org.id)).toBe(1);
  const client = await db.owner.connect();
  try {
    await client.query("begin");
    await client.query("select set_config('tenantbase.allow_prune', 'on', true)");
    await client.query("delete from app_public.organizations where id = $1", [org.id]);
    await client.query("commit");
  } finally {
    client.release();
  }
  expect(await account(org.id)).toBeUndefined();
  expect(await ledgerCount(org.id)).toBe(0);
});
