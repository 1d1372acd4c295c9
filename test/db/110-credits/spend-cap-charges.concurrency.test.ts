// Spend caps under real concurrency: 100 reservations race over 25 connections against a cap of
// 10 × their size (25, as the other concurrency tests: the local PostgreSQL of CI allows 100
// connections in all, shared by the test files running in parallel); exactly 10 are admitted, the others refused with SPEND_CAP_REACHED, and the
// cap's counter equals what the admitted reservations hold.

import pg from "pg";
import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createOrganization, createUser, type TestUser } from "../../helpers/fixtures.ts";
import { setPlan } from "../../helpers/team.ts";
import { generationHelpers } from "../../helpers/generations.ts";

let db: TestDatabase;
let users: pg.Pool;
beforeAll(async () => {
  db = await createTestDatabase();
  users = new pg.Pool({ connectionString: db.authUrl, max: 25 });
  users.on("error", () => {});
});
afterAll(async () => {
  await users?.end();
  await db?.drop();
});

/** Away from midnight UTC (the day, week and month turn there): see spend-cap-charges.test.ts. */
beforeEach(async () => {
  const { rows } = await db.owner.query(
    "select extract(epoch from app_hidden.spend_cap_window_end('day', app_hidden.spend_cap_window_start('day', now())) - clock_timestamp()) as left");
  const left = Number(rows[0].left);
  if (left < 60) await new Promise((resolve) => setTimeout(resolve, (left + 1) * 1000));
}, 75000);

const { project } = generationHelpers(() => db);

/**
 * Runs `sql` `n` times at once over the pool (25 connections: as many are in flight as it holds,
 * the rest queue for a connection), each in its own request transaction as `user`, committing on
 * success. Returns each outcome: null or the business code.
 */
async function race(user: TestUser, n: number, sql: (i: number) => [string, unknown[]]): Promise<(string | null)[]> {
  return Promise.all(Array.from({ length: n }, async (_, i) => {
    const client = await users.connect();
    try {
      await client.query("begin");
      await client.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true)", [user.userId]);
      await client.query("select app_hidden.start_request()");
      const [text, values] = sql(i);
      await client.query(text, values);
      await client.query("commit");
      return null;
    } catch (error: any) {
      await client.query("rollback").catch(() => {});
      return error.code === "TB000" ? error.detail : `${error.code}: ${error.message}`;
    } finally {
      client.release();
    }
  }));
}

function tally(outcomes: (string | null)[]) {
  const counts: Record<string, number> = {};
  for (const outcome of outcomes) counts[outcome ?? "ok"] = (counts[outcome ?? "ok"] ?? 0) + 1;
  return counts;
}

async function capState(capId: string) {
  const { rows } = await db.owner.query(
    `select app_public.credit_spend_caps_spent(c)::int as spent,
            (select coalesce(sum(r.amount) filter (where r.status = 'open'), 0) + coalesce(sum(r.captured_amount), 0)
               from app_public.credit_reservations r where r.organization_id = c.organization_id)::int as held
     from app_public.credit_spend_caps c where c.id = $1`, [capId]);
  return rows[0];
}

test("100 concurrent reservations against a daily cap of 10 × their size: exactly 10 admitted", async () => {
  const owner = await createUser(db);
  const org = await createOrganization(db, owner, "Race");
  await setPlan(db, org.id, "enterprise");
  await db.owner.query("select app_private.grant_credits($1, 100000, 'purchase', null, null)", [org.id]);
  const { rows } = await db.queryAs(owner, "select id from app_public.set_spend_cap($1, 'day', 250)", [org.id]);
  const capId = rows[0].id;

  const outcomes = await race(owner, 100, (i) => ["select app_public.reserve_credits($1, 25, $2, 900)", [org.id, `race-${i}`]]);
  expect(tally(outcomes)).toEqual({ ok: 10, SPEND_CAP_REACHED: 90 });
  expect(await capState(capId)).toEqual({ spent: 250, held: 250 });
  const discrepancies = await db.owner.query("select * from app_private.credit_ledger_discrepancies()");
  expect(discrepancies.rows).toEqual([]);
});

test("100 concurrent generations on a project capped at 10 × their size, while others release: the count stays exact", async () => {
  const owner = await createUser(db);
  const org = await createOrganization(db, owner, "Race Projects");
  await setPlan(db, org.id, "enterprise");
  await db.owner.query("select app_private.grant_credits($1, 100000, 'purchase', null, null)", [org.id]);
  const p = await project(owner, org.id);
  const { rows } = await db.queryAs(owner, "select id from app_public.set_spend_cap($1, 'month', 100, $2)", [org.id, p]);
  const capId = rows[0].id;
  // 5 generations hold 50 of the 100 and are failed (released) during the race
  const held: string[] = [];
  for (let i = 0; i < 5; i++) {
    const g = await db.queryAs(owner, "select id from app_public.start_generation($1, $2, 'image', 'm', null, 10, $3)", [org.id, p, `held-${i}`]);
    held.push(g.rows[0].id);
  }
  const outcomes = await race(owner, 100, (i) =>
    i < 5
      ? ["select app_public.fail_generation($1, 'cancelled')", [held[i]]]
      : ["select app_public.start_generation($1, $2, 'image', 'm', null, 10, $3)", [org.id, p, `race-${i}`]]);
  const counts = tally(outcomes.slice(5));
  expect(outcomes.slice(0, 5)).toEqual([null, null, null, null, null]);
  // between 5 (no release came first) and 10 (all came first) admitted; the counter is exact either way
  expect(counts.ok).toBeGreaterThanOrEqual(5);
  expect(counts.ok).toBeLessThanOrEqual(10);
  expect(counts.ok + counts.SPEND_CAP_REACHED).toBe(95);
  const state = await capState(capId);
  expect(state.spent).toBe(counts.ok * 10);
  expect(state.held).toBe(counts.ok * 10);
});
