// Usage alerts under real concurrency: dozens of spends race over 25 connections (the most a
// test pool holds: see test/db/110-credits/spend-cap-charges.concurrency.test.ts) across a
// low-balance threshold and a spend cap's percent thresholds, while others release; each
// threshold fires exactly once, with exactly one email job.

import pg from "pg";
import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createOrganization, createUser, type TestUser } from "../../helpers/fixtures.ts";
import { setPlan } from "../../helpers/team.ts";

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

/** Away from midnight UTC, where the alert days and the caps' periods turn. */
beforeEach(async () => {
  const { rows } = await db.owner.query(
    "select extract(epoch from app_hidden.spend_cap_window_end('day', app_hidden.spend_cap_window_start('day', now())) - clock_timestamp()) as left");
  const left = Number(rows[0].left);
  if (left < 60) await new Promise((resolve) => setTimeout(resolve, (left + 1) * 1000));
}, 75000);

/** Runs `sql` `n` times at once, each in its own request transaction as `user`; null or the error. */
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

async function fired(org: string) {
  const { rows } = await db.owner.query(
    `select a.kind::text, coalesce(a.balance_at_most::text, a.percent::text || '%') as at, count(*)::int as alerts,
            (select count(*)::int from graphile_worker._private_jobs j where j.key = 'credit_alert:' || min(a.id::text)) as jobs
     from app_public.credit_alerts a where a.organization_id = $1 group by 1, 2 order by 1, 2`, [org]);
  return rows;
}

test("60 concurrent reservations, 10 releases among them, across a low-balance threshold and 50% / 80% of a cap: each fires once", async () => {
  const owner = await createUser(db);
  const org = await createOrganization(db, owner, "Alert Race");
  await setPlan(db, org.id, "enterprise");
  await db.owner.query("select app_private.grant_credits($1, 2000, 'purchase', null, null)", [org.id]);
  const { rows: extra } = await db.owner.query("select available::int - 2000 as n from app_public.credit_accounts where organization_id = $1", [org.id]);
  if (extra[0].n > 0) await db.queryAs(owner, "select app_public.reserve_credits($1, $2, 'extra')", [org.id, extra[0].n]);
  // 10 reservations held before the race, released during it
  const held: string[] = [];
  for (let i = 0; i < 10; i++) {
    held.push((await db.queryAs(owner, "select id from app_public.reserve_credits($1, 20, $2)", [org.id, `held-${i}`])).rows[0].id);
  }
  const cap = (await db.queryAs(owner, "select id from app_public.set_spend_cap($1, 'day', 1000)", [org.id])).rows[0].id;
  await db.queryAs(owner, "select app_public.set_credit_alert_threshold($1, 'low_balance', 1000)", [org.id]);
  await db.queryAs(owner, "select app_public.set_credit_alert_threshold($1, 'cap_used', null, $2, 50)", [org.id, cap]);
  await db.queryAs(owner, "select app_public.set_credit_alert_threshold($1, 'cap_used', null, $2, 80)", [org.id, cap]);

  // 1,800 available; 50 × 20 = 1,000 reserved in the race (all within the cap), 200 released
  const outcomes = await race(owner, 60, (i) =>
    i < 10
      ? ["select app_public.release_credits($1)", [held[i]]]
      : ["select app_public.reserve_credits($1, 20, $2)", [org.id, `race-${i}`]]);
  expect(outcomes.filter((o) => o !== null)).toEqual([]);
  expect((await db.owner.query("select available::int from app_public.credit_accounts where organization_id = $1", [org.id])).rows[0].available).toBe(1000);
  expect(await fired(org.id)).toEqual([
    { kind: "cap_used", at: "50%", alerts: 1, jobs: 1 },
    { kind: "cap_used", at: "80%", alerts: 1, jobs: 1 },
    { kind: "low_balance", at: "1000", alerts: 1, jobs: 1 },
  ]);
  const { rows } = await db.owner.query("select count(*)::int as n from app_public.credit_alerts where organization_id = $1", [org.id]);
  expect(rows[0].n).toBe(3);
  expect((await db.owner.query("select * from app_private.credit_ledger_discrepancies()")).rows).toEqual([]);
});
