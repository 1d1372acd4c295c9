// organization_usage: the daily rollup kept by trigger answers exactly what a plain aggregate over
// generations answers, for every interval, through inserts, completions, failures and deletes.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createOrganization, createUser, twoTenants, type TestUser } from "../../helpers/fixtures.ts";

let db: TestDatabase;
let owner: TestUser;
let org: string;
let projectId: string;
beforeAll(async () => {
  db = await createTestDatabase();
  owner = await createUser(db);
  org = (await createOrganization(db, owner, "Analytics Co")).id;
  projectId = (await db.queryAs(owner, "insert into app_public.projects (organization_id, name) values ($1, 'P') returning id", [org])).rows[0].id;
  // The 3,000 loaded below count in this period's usage counter: the monthly generation quota
  // (plans.max_generations_per_period, test/db/100-plans/quotas.test.ts) is beside the point here.
  await db.owner.query("update app_public.plans set max_generations_per_period = null where id = 'free'");
  // 3,000 generations spread over 2026 (created_at set explicitly: the audit trigger, which would
  // stamp now(), is off for this load; the rollup trigger stays on)
  const client = await db.owner.connect();
  try {
    await client.query("begin");
    await client.query("alter table app_public.generations disable trigger _100_audit_columns");
    await client.query(`
      insert into app_public.credit_reservations (organization_id, amount, status, captured_amount, idempotency_key, expires_at, settled_at)
      select $1::uuid, 3, 'captured', 1 + n % 3, 'hist-' || n, now(), now() from generate_series(1, 3000) n`, [org]);
    await client.query(`
      insert into app_public.generations (organization_id, project_id, kind, model, status, credits_estimated, credits_charged, reservation_id, idempotency_key, completed_at, created_at)
      select r.organization_id, $1::uuid, (array['image','video','text']::app_public.generation_kind[])[1 + n % 3],
             (array['flux-1','veo-2','gpt-x','sd-3'])[1 + n % 4],
             (array['succeeded','failed','succeeded','running']::app_public.generation_status[])[1 + n % 4],
             3, case n % 4 when 0 then 1 + n % 3 when 2 then 1 + n % 3 when 1 then 0 end,
             r.id, r.idempotency_key, case when n % 4 <> 3 then now() end,
             timestamptz '2025-01-01 00:00:00+00' + (n * interval '2 hours 55 minutes')
      from (select r.*, substr(r.idempotency_key, 6)::int as n from app_public.credit_reservations r where r.idempotency_key like 'hist-%') r`, [projectId]);
    await client.query("alter table app_public.generations enable trigger _100_audit_columns");
    await client.query("commit");
  } catch (error) {
    await client.query("rollback");
    throw error;
  } finally {
    client.release();
  }
});
afterAll(() => db?.drop());

async function usage(user: TestUser, from: string, to: string, interval: string) {
  const { rows } = await db.queryAs(user, `select bucket_start::text, kind::text, model, generations::int, succeeded::int, failed::int, credits::int
    from app_public.organization_usage($1, $2, $3, $4)`, [org, from, to, interval]);
  return rows;
}
async function expected(from: string, to: string, interval: string) {
  const { rows } = await db.owner.query(`
    select date_trunc($4, (created_at at time zone 'UTC')::date::timestamp)::date::text as bucket_start, kind::text as kind, model,
           count(*)::int as generations, count(*) filter (where status = 'succeeded')::int as succeeded,
           count(*) filter (where status = 'failed')::int as failed, coalesce(sum(credits_charged), 0)::int as credits
    from app_public.generations
    where organization_id = $1 and (created_at at time zone 'UTC')::date >= $2::date and (created_at at time zone 'UTC')::date < $3::date
    group by 1, generations.kind, 3 order by 1, generations.kind, 3`, [org, from, to, interval]);
  return rows;
}

test("every interval agrees with a plain aggregate over generations", async () => {
  for (const [from, to, interval] of [
    ["2025-01-01", "2025-02-01", "day"],
    ["2025-01-01", "2025-07-01", "week"],
    ["2025-01-01", "2026-01-01", "month"],
    ["2025-03-15", "2025-03-16", "day"],
  ]) {
    const got = await usage(owner, from, to, interval);
    expect(got.length).toBeGreaterThan(0);
    expect(got).toEqual(await expected(from, to, interval));
  }
  const months = await usage(owner, "2025-01-01", "2026-01-01", "month");
  expect(new Set(months.map((r) => r.bucket_start)).size).toBe(12); // 3,000 x 2h55m ≈ 365 days from Jan 1
  const weeks = await usage(owner, "2025-01-01", "2025-02-01", "week");
  expect(weeks[0].bucket_start).toBe("2024-12-30"); // the Monday of the week holding Jan 1
});

test("the rollup follows start, complete, fail and delete, and equals a rebuild from scratch", async () => {
  // One transaction, so all three share now(): "today" is the database's UTC date of that moment,
  // and the test cannot straddle midnight.
  const { today, tomorrow, c } = await db.as(owner, async (client) => {
    const start = async (key: string, model: string) =>
      (await client.query("select * from app_public.start_generation($1, $2, 'image', $3, '{}', 5, $4)", [org, projectId, model, key])).rows[0];
    const a = await start("u1", "flux-1");
    const b = await start("u2", "flux-1");
    const c = await start("u3", "sd-3");
    await client.query("select app_public.complete_generation($1, 4)", [a.id]);
    await client.query("select app_public.fail_generation($1, 'no')", [b.id]);
    const { rows } = await client.query("select (now() at time zone 'UTC')::date::text as today, ((now() at time zone 'UTC')::date + 1)::text as tomorrow");
    return { ...rows[0], c };
  });
  expect(await usage(owner, today, tomorrow, "day")).toEqual([
    { bucket_start: today, kind: "image", model: "flux-1", generations: 2, succeeded: 1, failed: 1, credits: 4 },
    { bucket_start: today, kind: "image", model: "sd-3", generations: 1, succeeded: 0, failed: 0, credits: 0 },
  ]);
  expect(await usage(owner, today, tomorrow, "day")).toEqual(await expected(today, tomorrow, "day"));
  // a hard delete (the owner's; clients cannot) leaves the rollup exact
  const client = await db.owner.connect();
  try {
    await client.query("delete from app_public.generations where id = $1", [c.id]);
  } finally {
    client.release();
  }
  expect(await usage(owner, today, tomorrow, "day")).toEqual(await expected(today, tomorrow, "day"));
  const before = await db.owner.query("select * from app_private.generation_usage_daily where generations > 0 order by 1, 2, 3, 4");
  await db.owner.query("select app_private.rebuild_generation_usage_daily()");
  const after = await db.owner.query("select * from app_private.generation_usage_daily order by 1, 2, 3, 4");
  expect(after.rows).toEqual(before.rows);
});

test("members only; bad ranges are refused", async () => {
  const { b } = await twoTenants(db);
  const code = async (user: TestUser | null, o: string, from: unknown, to: unknown, interval: unknown = "day") => {
    try {
      await db.queryAs(user, "select * from app_public.organization_usage($1, $2, $3, $4)", [o, from, to, interval]);
      return null;
    } catch (error: any) {
      return error.code === "TB000" ? error.detail : error.code;
    }
  };
  expect(await code(b.owner, org, "2026-01-01", "2026-02-01")).toBe("NOT_FOUND");
  expect(await code(null, org, "2026-01-01", "2026-02-01")).toBe("42501");
  expect(await code(owner, org, "2026-02-01", "2026-01-01")).toBe("INVALID_RANGE");
  expect(await code(owner, org, "2026-02-01", "2026-02-01")).toBe("INVALID_RANGE");
  expect(await code(owner, org, null, "2026-02-01")).toBe("INVALID_RANGE");
  expect(await code(owner, org, "2000-01-01", "2026-02-01")).toBe("INVALID_RANGE");
  expect(await code(owner, org, "2026-01-01", "2026-02-01", "hour")).toBe("22P02");
  await expect(db.queryAs(owner, "select * from app_private.generation_usage_daily")).rejects.toThrow(/permission denied/);
});
