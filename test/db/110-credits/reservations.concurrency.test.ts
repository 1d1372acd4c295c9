// The credit ledger under real concurrency: many connections racing on one account, and a
// randomized mix of every operation followed by the invariants.

import pg from "pg";
import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createOrganization, createUser, type TestUser } from "../../helpers/fixtures.ts";

let db: TestDatabase;
let users: pg.Pool; // app_authenticator, acting as app_user
let owners: pg.Pool; // app_owner: grants and jobs
beforeAll(async () => {
  db = await createTestDatabase();
  users = new pg.Pool({ connectionString: db.authUrl, max: 25 });
  owners = new pg.Pool({ connectionString: db.ownerUrl, max: 8 });
  users.on("error", () => {});
  owners.on("error", () => {});
});
afterAll(async () => {
  await users?.end();
  await owners?.end();
  await db?.drop();
});

async function asUser<T = any>(user: TestUser, sql: string, values: unknown[]): Promise<T> {
  const client = await users.connect();
  try {
    await client.query("begin");
    await client.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true)", [user.userId]);
    await client.query("select app_hidden.start_request()"); // as every request does (db/transaction.ts)
    const { rows } = await client.query(sql, values);
    await client.query("commit");
    return rows[0];
  } catch (error) {
    await client.query("rollback").catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

function codeOf(reason: any): string {
  return reason?.code === "TB000" ? reason.detail : `${reason?.code}: ${reason?.message}`;
}

async function expectInvariants() {
  const discrepancies = await db.owner.query("select * from app_private.credit_ledger_discrepancies()");
  expect(discrepancies.rows).toEqual([]);
  // every reservation: one reserve entry; settled at most once; settled amounts add up
  const reservations = await db.owner.query(`
    select r.id, r.status, r.amount, r.captured_amount,
      count(*) filter (where l.kind = 'reserve') as reserves,
      count(*) filter (where l.kind = 'capture') as captures,
      count(*) filter (where l.kind = 'release') as releases,
      coalesce(sum(-l.reserved_delta) filter (where l.kind in ('capture', 'release')), 0) as settled,
      coalesce(sum(-l.amount) filter (where l.kind = 'capture'), 0) as spent
    from app_public.credit_reservations r
    left join app_public.credit_ledger l on l.organization_id = r.organization_id and l.reservation_id = r.id
    group by r.organization_id, r.id
    having not (
      count(*) filter (where l.kind = 'reserve') = 1
      and count(*) filter (where l.kind = 'capture') <= 1
      and count(*) filter (where l.kind = 'release') <= 1
      and case when r.status = 'open'
            then count(*) filter (where l.kind in ('capture', 'release')) = 0
            else coalesce(sum(-l.reserved_delta) filter (where l.kind in ('capture', 'release')), 0) = r.amount end
      and coalesce(sum(-l.amount) filter (where l.kind = 'capture'), 0) = coalesce(r.captured_amount, 0)
    )`);
  expect(reservations.rows).toEqual([]);
  const negative = await db.owner.query("select * from app_public.credit_accounts where available < 0 or reserved < 0");
  expect(negative.rows).toEqual([]);
  const spent = await db.owner.query(`
    select c.organization_id from app_public.usage_counters c
    where c.credits_spent <> coalesce((select sum(-l.amount) from app_public.credit_ledger l
      where l.organization_id = c.organization_id and l.kind = 'capture' and l.created_at >= c.period_start), 0)`);
  expect(spent.rows).toEqual([]);
  const counters = await db.owner.query("select * from app_private.usage_counter_discrepancies()");
  expect(counters.rows).toEqual([]);
}

test("200 concurrent reserves of 1 credit against 100, over 25 connections: exactly 100 succeed", async () => {
  const owner = await createUser(db);
  const org = await createOrganization(db, owner, "Contended"); // the free plan's 100 credits
  const results = await Promise.allSettled(
    Array.from({ length: 200 }, (_, i) =>
      asUser(owner, "select * from app_public.reserve_credits($1, 1, $2)", [org.id, `r-${i}`]),
    ),
  );
  const ok = results.filter((r) => r.status === "fulfilled").length;
  const codes = new Set(results.flatMap((r) => (r.status === "rejected" ? [codeOf(r.reason)] : [])));
  expect(ok).toBe(100);
  expect([...codes]).toEqual(["INSUFFICIENT_CREDITS"]);
  const { rows } = await db.owner.query("select available::int, reserved::int from app_public.credit_accounts where organization_id = $1", [org.id]);
  expect(rows[0]).toEqual({ available: 0, reserved: 100 });
  const reserveEntries = await db.owner.query("select count(*)::int as n from app_public.credit_ledger where organization_id = $1 and kind = 'reserve'", [org.id]);
  expect(reserveEntries.rows[0].n).toBe(100);
  await expectInvariants();
});

test("the same idempotency key sent 50 times at once reserves once", async () => {
  const owner = await createUser(db);
  const org = await createOrganization(db, owner, "Same Key");
  const results = await Promise.all(
    Array.from({ length: 50 }, () => asUser(owner, "select * from app_public.reserve_credits($1, 3, 'one-key')", [org.id])),
  );
  expect(new Set(results.map((r) => r.id)).size).toBe(1);
  const { rows } = await db.owner.query("select available::int, reserved::int from app_public.credit_accounts where organization_id = $1", [org.id]);
  expect(rows[0]).toEqual({ available: 97, reserved: 3 });
  await expectInvariants();
});

test("captures and releases of one reservation racing: exactly one wins, 30 times over", async () => {
  const owner = await createUser(db);
  const org = await createOrganization(db, owner, "Racing Captures");
  for (let round = 0; round < 30; round++) {
    const r = await asUser(owner, "select * from app_public.reserve_credits($1, 2, $2)", [org.id, `race-${round}`]);
    const attempts = [
      asUser(owner, "select * from app_public.capture_credits($1, 2)", [r.id]),
      asUser(owner, "select * from app_public.capture_credits($1, 1)", [r.id]),
      asUser(owner, "select * from app_public.release_credits($1)", [r.id]),
      asUser(owner, "select * from app_public.capture_credits($1)", [r.id]),
    ];
    const results = await Promise.allSettled(attempts);
    expect(results.filter((x) => x.status === "fulfilled")).toHaveLength(1);
    for (const x of results) if (x.status === "rejected") expect(codeOf(x.reason)).toBe("RESERVATION_ALREADY_SETTLED");
  }
  await expectInvariants();
});

test("randomized: thousands of mixed operations from concurrent clients keep every invariant", async () => {
  // deterministic pseudo-random sequence so a failure can be replayed
  let seed = 20261122;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const pick = <T,>(items: T[]) => items[Math.floor(random() * items.length)];

  const orgs: { id: string; owner: TestUser; open: string[] }[] = [];
  for (let i = 0; i < 4; i++) {
    const owner = await createUser(db);
    const org = await createOrganization(db, owner, `Random ${i}`);
    orgs.push({ id: org.id, owner, open: [] });
  }
  const counts: Record<string, number> = {};
  let keyNo = 0;

  async function operation() {
    const org = pick(orgs);
    const roll = random();
    let kind: string;
    try {
      if (roll < 0.08) {
        kind = "grant";
        const expires = random() < 0.3 ? `now() + interval '${Math.floor(random() * 3)} seconds'` : "null";
        await owners.query(`select app_private.grant_credits($1, $2, 'purchase', ${expires}, $3)`, [org.id, 1 + Math.floor(random() * 50), `g-${keyNo++}`]);
      } else if (roll < 0.5) {
        kind = "reserve";
        const key = random() < 0.1 && keyNo > 0 ? `r-${Math.floor(random() * keyNo)}` : `r-${keyNo++}`;
        const r = await asUser(org.owner, "select * from app_public.reserve_credits($1, $2, $3, $4)", [org.id, 1 + Math.floor(random() * 15), key, 1 + Math.floor(random() * 5)]);
        org.open.push(r.id);
      } else if (roll < 0.75) {
        kind = "capture";
        const id = pick(org.open.length ? org.open : [""]);
        if (!id) return;
        await asUser(org.owner, "select * from app_public.capture_credits($1, $2)", [id, random() < 0.5 ? null : 1]);
      } else if (roll < 0.9) {
        kind = "release";
        const id = pick(org.open.length ? org.open : [""]);
        if (!id) return;
        await asUser(org.owner, "select * from app_public.release_credits($1)", [id]);
      } else if (roll < 0.95) {
        kind = "expire-reservations";
        const id = pick(org.open.length ? org.open : [""]);
        if (!id) return;
        if (random() < 0.5) await owners.query("update app_public.credit_reservations set expires_at = now() where id = $1 and status = 'open'", [id]);
        await owners.query("select app_private.expire_reservation($1, $2)", [org.id, id]);
      } else {
        kind = "expire-grants";
        await owners.query("select app_private.expire_grants($1)", [org.id]);
      }
      counts[kind] = (counts[kind] ?? 0) + 1;
    } catch (error: any) {
      const code = codeOf(error);
      // business refusals are expected; anything else is a bug
      expect(["INSUFFICIENT_CREDITS", "RESERVATION_ALREADY_SETTLED", "RESERVATION_EXPIRED", "IDEMPOTENCY_KEY_REUSED"]).toContain(code);
      counts[code] = (counts[code] ?? 0) + 1;
    }
  }

  const TOTAL = 3000;
  const CLIENTS = 24;
  let started = 0;
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (started < TOTAL) {
        started++;
        await operation();
      }
    }),
  );
  // everything succeeded at least sometimes, and was refused sometimes
  for (const kind of ["grant", "reserve", "capture", "release", "expire-reservations", "expire-grants", "INSUFFICIENT_CREDITS", "RESERVATION_ALREADY_SETTLED"]) {
    expect(counts[kind] ?? 0).toBeGreaterThan(0);
  }
  await expectInvariants();
  // and the expiry of everything still open leaves only grants without expiry behind
  await owners.query("update app_public.credit_reservations set expires_at = now() where status = 'open'");
  await owners.query("update app_public.credit_grants set expires_at = now() where expires_at is not null and remaining > 0");
  for (const org of orgs) {
    const open = await owners.query("select id from app_public.credit_reservations where organization_id = $1 and status = 'open'", [org.id]);
    for (const r of open.rows) await owners.query("select app_private.expire_reservation($1, $2)", [org.id, r.id]);
    await owners.query("select app_private.expire_grants($1)", [org.id]);
  }
  const reservedLeft = await owners.query("select coalesce(sum(reserved), 0)::int as n from app_public.credit_accounts where organization_id = any($1)", [orgs.map((o) => o.id)]);
  expect(reservedLeft.rows[0].n).toBe(0);
  await expectInvariants();
});
