// Credit grants (db/functions/110-credits/grants.sql): grant_credits (idempotent on its key), the
// monthly allowance of a new organization, and expiring what is left of expired grants.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createOrganization, createUser } from "../../helpers/fixtures.ts";
import { codeOf, UNKNOWN } from "../../helpers/codes.ts";
import { creditHelpers } from "../../helpers/credits.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const { account, expectConsistent, emptyOrganization } = creditHelpers(() => db);

test("a new organization gets its plan's monthly allowance, expiring with the usage period", async () => {
  const owner = await createUser(db);
  const org = await createOrganization(db, owner);
  expect(await account(org.id)).toEqual({ available: 100, reserved: 0 });
  const { rows } = await db.queryAs(owner,
    `select l.kind, l.amount::int, l.balance_after::int, l.source, g.expires_at = c.period_end as expires_with_period
     from app_public.credit_ledger l
     join app_public.credit_grants g on g.id = l.grant_id
     join app_public.usage_counters c on c.organization_id = l.organization_id
     where l.organization_id = $1`, [org.id]);
  expect(rows).toEqual([{ kind: "grant", amount: 100, balance_after: 100, source: "monthly_allowance", expires_with_period: true }]);
  await expectConsistent();
});

test("grant_credits returns the ledger entry and is idempotent on its key", async () => {
  const { org } = await emptyOrganization();
  const first = await db.owner.query("select * from app_private.grant_credits($1, 500, 'purchase', null, 'stripe:evt_1')", [org.id]);
  const again = await db.owner.query("select * from app_private.grant_credits($1, 500, 'purchase', null, 'stripe:evt_1')", [org.id]);
  expect(again.rows[0].id).toBe(first.rows[0].id);
  // A grant is a system operation: its key is a system key, in its own column (never a client's).
  expect(first.rows[0]).toMatchObject({ kind: "grant", source: "purchase", idempotency_key: null, system_key: "stripe:evt_1" });
  expect(Number(first.rows[0].balance_after)).toBe(500);
  expect(await account(org.id)).toEqual({ available: 500, reserved: 0 });
  expect(await codeOf(db.owner.query("select app_private.grant_credits($1, 600, 'purchase', null, 'stripe:evt_1')", [org.id]))).toBe("IDEMPOTENCY_KEY_REUSED");
  for (const amount of [0, -5, 1_000_000_000_001]) {
    expect(await codeOf(db.owner.query("select app_private.grant_credits($1, $2, 'purchase', null, null)", [org.id, amount]))).toBe("INVALID_AMOUNT");
  }
  expect(await codeOf(db.owner.query("select app_private.grant_credits($1, 5, 'Bad Source!', null, null)", [org.id]))).toBe("INVALID_SOURCE");
  expect(await codeOf(db.owner.query("select app_private.grant_credits($1, 5, 'manual', null, null)", [UNKNOWN]))).toBe("NOT_FOUND");
  expect(await account(org.id)).toEqual({ available: 500, reserved: 0 });
  // clients cannot call it
  await expect(db.queryAs({ userId: (await createUser(db)).userId }, "select app_private.grant_credits($1, 5, 'manual', null, null)", [org.id])).rejects.toThrow(/permission denied/);
  await expectConsistent();
});

test("a grant already past its expiry is granted and expired at once; both entries stay on record", async () => {
  const { org } = await emptyOrganization();
  const entry = (await db.owner.query("select * from app_private.grant_credits($1, 7, 'promotion', now() - interval '1 second', 'late')", [org.id])).rows[0];
  const { rows } = await db.owner.query("select kind, amount::int, source from app_public.credit_ledger where grant_id = $1 order by seq", [entry.grant_id]);
  expect(rows).toEqual([{ kind: "grant", amount: 7, source: "promotion" }, { kind: "expire", amount: -7, source: "grant_expired" }]);
  expect(await account(org.id)).toEqual({ available: 0, reserved: 0 });
  await expectConsistent();
});

test("expire_due_grants expires every organization's expired grants, at most max_orgs organizations per call, each once", async () => {
  await db.owner.query("select app_private.expire_due_grants(100000)"); // whatever earlier tests left due
  const orgs: string[] = [];
  for (let i = 0; i < 3; i++) {
    const { org } = await emptyOrganization();
    for (const key of ["a", "b"]) await db.owner.query("select app_private.grant_credits($1, 5, 'promotion', now() + interval '1 hour', $2)", [org.id, key]);
    await db.owner.query("select app_private.grant_credits($1, 5, 'purchase', null, 'keep')", [org.id]);
    orgs.push(org.id);
  }
  await db.owner.query("update app_public.credit_grants set expires_at = now() - interval '1 second' where organization_id = any($1) and source = 'promotion'", [orgs]);
  const run = async () => (await db.owner.query("select app_private.expire_due_grants(2) as n")).rows[0].n;
  expect(await run()).toBe(4); // two organizations, two grants each
  expect(await run()).toBe(2);
  expect(await run()).toBe(0);
  for (const org of orgs) expect(await account(org)).toEqual({ available: 5, reserved: 0 });
  await expectConsistent();
});
