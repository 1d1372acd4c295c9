// The credit mutations members call (db/functions/110-credits/mutations.sql): reserve, capture
// and release as a member, bad input refused with a code and nothing changed, other tenants.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createUser, twoTenants } from "../../helpers/fixtures.ts";
import { codeOf, UNKNOWN } from "../../helpers/codes.ts";
import { creditHelpers } from "../../helpers/credits.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const { account, ledgerCount, expectConsistent, emptyOrganization, reserve, capture, release } = creditHelpers(() => db);

test("reserve, partial capture and release move available and reserved, with one ledger entry per move", async () => {
  const { org, owner } = await emptyOrganization();
  await db.owner.query("select app_private.grant_credits($1, 50, 'purchase', null, null)", [org.id]);
  const r1 = await reserve(owner, org.id, 30, "gen-1");
  expect(r1).toMatchObject({ status: "open", idempotency_key: "gen-1" });
  expect(Number(r1.amount)).toBe(30);
  expect(await account(org.id)).toEqual({ available: 20, reserved: 30 });
  const captured = await capture(owner, r1.id, 12);
  expect(captured).toMatchObject({ status: "captured" });
  expect(Number(captured.captured_amount)).toBe(12);
  expect(await account(org.id)).toEqual({ available: 38, reserved: 0 });
  const r2 = await reserve(owner, org.id, 38, "gen-2");
  expect(await account(org.id)).toEqual({ available: 0, reserved: 38 });
  expect(await codeOf(reserve(owner, org.id, 1, "gen-3"))).toBe("INSUFFICIENT_CREDITS");
  expect((await release(owner, r2.id)).status).toBe("released");
  expect(await account(org.id)).toEqual({ available: 38, reserved: 0 });
  const { rows } = await db.owner.query(
    `select kind, available_delta::int, reserved_delta::int, amount::int, available_after::int, reserved_after::int
     from app_public.credit_ledger where organization_id = $1 and reservation_id is not null order by seq`, [org.id]);
  expect(rows).toEqual([
    { kind: "reserve", available_delta: -30, reserved_delta: 30, amount: 0, available_after: 20, reserved_after: 30 },
    { kind: "capture", available_delta: 0, reserved_delta: -12, amount: -12, available_after: 20, reserved_after: 18 },
    { kind: "release", available_delta: 18, reserved_delta: -18, amount: 0, available_after: 38, reserved_after: 0 },
    { kind: "reserve", available_delta: -38, reserved_delta: 38, amount: 0, available_after: 0, reserved_after: 38 },
    { kind: "release", available_delta: 38, reserved_delta: -38, amount: 0, available_after: 38, reserved_after: 0 },
  ]);
  const counter = await db.owner.query("select credits_spent::int from app_public.usage_counters where organization_id = $1", [org.id]);
  expect(counter.rows[0].credits_spent).toBe(12);
  // settled reservations stay settled
  expect(await codeOf(capture(owner, r1.id))).toBe("RESERVATION_ALREADY_SETTLED");
  expect(await codeOf(release(owner, r1.id))).toBe("RESERVATION_ALREADY_SETTLED");
  expect(await codeOf(capture(owner, r2.id, 1))).toBe("RESERVATION_ALREADY_SETTLED");
  await expectConsistent();
});

test("bad input: every mutation refuses it with a clear code and changes nothing", async () => {
  const { org, owner } = await emptyOrganization();
  await db.owner.query("select app_private.grant_credits($1, 10, 'purchase', null, null)", [org.id]);
  const before = await ledgerCount(org.id);
  for (const amount of [0, -1, 1.5, "1000000000001", "1e30", null]) {
    expect(await codeOf(reserve(owner, org.id, amount, `k${amount}`))).toBe("INVALID_AMOUNT");
  }
  expect(await codeOf(reserve(owner, org.id, 1, null as any))).toBe("INVALID_IDEMPOTENCY_KEY");
  expect(await codeOf(reserve(owner, org.id, 1, ""))).toBe("INVALID_IDEMPOTENCY_KEY");
  expect(await codeOf(reserve(owner, org.id, 1, "x".repeat(201)))).toBe("INVALID_IDEMPOTENCY_KEY");
  expect(await codeOf(reserve(owner, org.id, 1, "k", 0))).toBe("INVALID_TTL");
  expect(await codeOf(reserve(owner, org.id, 1, "k", 86401))).toBe("INVALID_TTL");
  expect(await codeOf(reserve(owner, org.id, 11, "k"))).toBe("INSUFFICIENT_CREDITS");
  expect(await codeOf(reserve(owner, UNKNOWN, 1, "k"))).toBe("NOT_FOUND");
  expect(await codeOf(reserve(owner, null as any, 1, "k"))).toBe("NOT_FOUND");
  const r = await reserve(owner, org.id, 5, "ok");
  for (const amount of [0, -1, 2.5, 6, "1e13"]) {
    expect(await codeOf(capture(owner, r.id, amount))).toBe("INVALID_AMOUNT");
  }
  expect(await codeOf(capture(owner, UNKNOWN))).toBe("NOT_FOUND");
  expect(await codeOf(release(owner, UNKNOWN))).toBe("NOT_FOUND");
  expect(await codeOf(capture(owner, null as any))).toBe("NOT_FOUND");
  expect(await codeOf(db.queryAs(null, "select app_public.reserve_credits($1, 1, 'anon')", [org.id]))).toMatch(/permission denied/);
  expect(await ledgerCount(org.id)).toBe(before + 1);
  expect(await account(org.id)).toEqual({ available: 5, reserved: 5 });
  await expectConsistent();
});

test("cross-tenant: another organization's member can neither see nor move these credits", async () => {
  const { a, b } = await twoTenants(db);
  const r = await reserve(a.member, a.org.id, 10, "a-1");
  for (const table of ["credit_accounts", "credit_ledger", "credit_grants", "credit_reservations"]) {
    const { rows } = await db.queryAs(b.owner, `select * from app_public.${table} where organization_id = $1`, [a.org.id]);
    expect(rows).toEqual([]);
    const mine = await db.queryAs(a.member, `select * from app_public.${table} where organization_id = $1`, [a.org.id]);
    expect(mine.rows.length).toBeGreaterThan(0);
  }
  expect(await codeOf(reserve(b.owner, a.org.id, 1, "steal"))).toBe("NOT_FOUND");
  expect(await codeOf(capture(b.owner, r.id))).toBe("NOT_FOUND");
  expect(await codeOf(release(b.owner, r.id))).toBe("NOT_FOUND");
  expect(await account(a.org.id)).toEqual({ available: 90, reserved: 10 });
  // a member of both may act on both, each on its own account
  const both = await createUser(db);
  await db.owner.query("update app_public.organizations set plan_id = 'pro' where id = $1", [b.org.id]);
  await db.owner.query("insert into app_public.organization_members (organization_id, user_id) values ($1, $2)", [b.org.id, both.userId]);
  await reserve(both, b.org.id, 1, "a-1"); // the same key in another organization is another key
  expect(await account(b.org.id)).toEqual({ available: 99, reserved: 1 });
  await expectConsistent();
});
