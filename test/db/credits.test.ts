// The credit ledger at the SQL level: grants, expiry order, reserve / capture / release,
// idempotency, append-only, bad input and other tenants.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { createOrganization, createUser, twoTenants, type TestUser } from "../helpers/fixtures.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const UNKNOWN = "00000000-0000-7000-8000-000000000000";

async function codeOf(promise: Promise<unknown>): Promise<string | null> {
  try {
    await promise;
    return null;
  } catch (error: any) {
    return error.code === "TB000" ? error.detail : `${error.code}: ${error.message}`;
  }
}

async function account(organizationId: string) {
  const { rows } = await db.owner.query(
    "select available::int, reserved::int from app_public.credit_accounts where organization_id = $1",
    [organizationId],
  );
  return rows[0];
}

async function ledgerCount(organizationId: string): Promise<number> {
  const { rows } = await db.owner.query("select count(*)::int as n from app_public.credit_ledger where organization_id = $1", [organizationId]);
  return rows[0].n;
}

async function expectConsistent() {
  const { rows } = await db.owner.query("select * from app_private.credit_ledger_discrepancies()");
  expect(rows).toEqual([]);
}

/** An organization with no credits at all (its monthly allowance debited away). */
async function emptyOrganization(owner?: TestUser) {
  owner ??= await createUser(db);
  const org = await createOrganization(db, owner, "Credits Org");
  await db.owner.query("select app_private.debit_credits($1, 100, 'manual', null)", [org.id]);
  return { org, owner };
}

const reserve = (user: TestUser, org: string, amount: unknown, key: string, ttl: number | null = 900) =>
  db.queryAs(user, "select * from app_public.reserve_credits($1, $2, $3, $4)", [org, amount, key, ttl]).then((r) => r.rows[0]);
const capture = (user: TestUser, id: string, amount: unknown = null, key: string | null = null) =>
  db.queryAs(user, "select * from app_public.capture_credits($1, $2, $3)", [id, amount, key]).then((r) => r.rows[0]);
const release = (user: TestUser, id: string, key: string | null = null) =>
  db.queryAs(user, "select * from app_public.release_credits($1, $2)", [id, key]).then((r) => r.rows[0]);

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
  expect(first.rows[0]).toMatchObject({ kind: "grant", source: "purchase", idempotency_key: "stripe:evt_1" });
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

test("idempotency: a repeated call returns the first result and writes nothing", async () => {
  const { org, owner } = await emptyOrganization();
  await db.owner.query("select app_private.grant_credits($1, 10, 'purchase', null, null)", [org.id]);
  const first = await reserve(owner, org.id, 4, "same-key");
  const n = await ledgerCount(org.id);
  const again = await reserve(owner, org.id, 4, "same-key");
  expect(again.id).toBe(first.id);
  expect(await ledgerCount(org.id)).toBe(n);
  expect(await account(org.id)).toEqual({ available: 6, reserved: 4 });
  expect(await codeOf(reserve(owner, org.id, 5, "same-key"))).toBe("IDEMPOTENCY_KEY_REUSED");
  const c1 = await capture(owner, first.id, 3, "capture-key");
  const c2 = await capture(owner, first.id, 3, "capture-key");
  expect(c2).toEqual(c1);
  expect(await ledgerCount(org.id)).toBe(n + 2); // capture + release of the rest, once
  expect(await codeOf(capture(owner, first.id, 2, "capture-key"))).toBe("IDEMPOTENCY_KEY_REUSED");
  expect(await codeOf(release(owner, first.id, "capture-key"))).toBe("IDEMPOTENCY_KEY_REUSED");
  // a reserve replayed after its capture still returns the reservation, now captured
  expect((await reserve(owner, org.id, 4, "same-key")).status).toBe("captured");
  const r = await reserve(owner, org.id, 2, "other");
  expect((await release(owner, r.id, "release-key")).status).toBe("released");
  expect((await release(owner, r.id, "release-key")).status).toBe("released");
  expect(await account(org.id)).toEqual({ available: 7, reserved: 0 });
  await expectConsistent();
});

test("spending takes the soonest-expiring grant first; expiry removes what is left with its own entry", async () => {
  const { org, owner } = await emptyOrganization();
  const grant = async (amount: number, expires: string | null, key: string) =>
    (await db.owner.query(`select grant_id from app_private.grant_credits($1, $2, 'manual', ${expires ?? "null"}, $3)`, [org.id, amount, key])).rows[0].grant_id;
  const never = await grant(10, null, "never");
  const later = await grant(10, "now() + interval '10 days'", "later");
  const soon = await grant(10, "now() + interval '1 day'", "soon");
  const remaining = async () => {
    const { rows } = await db.owner.query("select id, remaining::int from app_public.credit_grants where organization_id = $1 and source = 'manual'", [org.id]);
    return Object.fromEntries(rows.map((r) => [r.id, r.remaining]));
  };
  const r1 = await reserve(owner, org.id, 15, "a");
  expect(await remaining()).toEqual({ [never]: 10, [later]: 5, [soon]: 0 });
  await capture(owner, r1.id, 7); // 7 of the soon grant consumed, 3 back to it, 5 back to later
  expect(await remaining()).toEqual({ [never]: 10, [later]: 10, [soon]: 3 });

  // the "soon" grant expires: the job removes its 3 credits with an 'expire' entry, once
  await db.owner.query("update app_public.credit_grants set expires_at = now() - interval '1 second' where id = $1", [soon]);
  expect((await db.owner.query("select app_private.expire_grants($1) as n", [org.id])).rows[0].n).toBe(1);
  expect((await db.owner.query("select app_private.expire_grants($1) as n", [org.id])).rows[0].n).toBe(0);
  expect(await account(org.id)).toEqual({ available: 20, reserved: 0 });
  const { rows } = await db.owner.query("select kind, amount::int, source from app_public.credit_ledger where grant_id = $1 order by seq", [soon]);
  expect(rows).toEqual([{ kind: "grant", amount: 10, source: "manual" }, { kind: "expire", amount: -3, source: "grant_expired" }]);

  // credits reserved from a grant that expires meanwhile expire when they come back
  const r2 = await reserve(owner, org.id, 12, "b"); // 10 from later, 2 from never
  await db.owner.query("update app_public.credit_grants set expires_at = now() - interval '1 second' where id = $1", [later]);
  await release(owner, r2.id);
  expect(await account(org.id)).toEqual({ available: 10, reserved: 0 });
  expect(await remaining()).toEqual({ [never]: 10, [later]: 0, [soon]: 0 });
  // a reserve never spends an expired grant, even before the job ran
  await grant(5, "now() + interval '1 hour'", "c");
  await db.owner.query("update app_public.credit_grants set expires_at = now() - interval '1 second' where organization_id = $1 and remaining = 5", [org.id]);
  expect(await codeOf(reserve(owner, org.id, 11, "d"))).toBe("INSUFFICIENT_CREDITS");
  await reserve(owner, org.id, 10, "e");
  expect(await account(org.id)).toEqual({ available: 0, reserved: 10 });
  await expectConsistent();
});

test("an expired reservation cannot be captured; the expiry releases it once", async () => {
  const { org, owner } = await emptyOrganization();
  await db.owner.query("select app_private.grant_credits($1, 10, 'purchase', null, null)", [org.id]);
  const r = await reserve(owner, org.id, 6, "x", 60);
  // the expiry job was queued for expires_at with a job key
  const job = await db.owner.query("select run_at, key from graphile_worker.jobs where key = $1", [`credits:expire-reservation:${r.id}`]);
  expect(job.rows[0].run_at.getTime()).toBe(r.expires_at.getTime());
  // before expiry the job does nothing
  expect((await db.owner.query("select app_private.expire_reservation($1, $2) as done", [org.id, r.id])).rows[0].done).toBe(false);
  await db.owner.query("update app_public.credit_reservations set expires_at = now() - interval '1 second' where id = $1", [r.id]);
  expect(await codeOf(capture(owner, r.id))).toBe("RESERVATION_EXPIRED");
  expect((await db.owner.query("select app_private.expire_reservation($1, $2) as done", [org.id, r.id])).rows[0].done).toBe(true);
  expect((await db.owner.query("select app_private.expire_reservation($1, $2) as done", [org.id, r.id])).rows[0].done).toBe(false);
  expect(await account(org.id)).toEqual({ available: 10, reserved: 0 });
  expect(await codeOf(capture(owner, r.id))).toBe("RESERVATION_EXPIRED");
  expect(await codeOf(release(owner, r.id))).toBe("RESERVATION_ALREADY_SETTLED");
  const status = await db.owner.query("select status from app_public.credit_reservations where id = $1", [r.id]);
  expect(status.rows[0].status).toBe("expired");
  await expectConsistent();
});

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
