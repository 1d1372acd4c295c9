// Plans and their limits (db/functions/100-plans/limits.sql): SEAT_LIMIT_REACHED and
// PROJECT_LIMIT_REACHED, reserved seats, and the limits holding under many real connections.

import pg from "pg";
import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { addMember, createOrganization, createUser, twoTenants } from "../../helpers/fixtures.ts";
import { codeOf } from "../../helpers/codes.ts";
import { planHelpers } from "../../helpers/plans.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const { counters, expectCountersExact } = planHelpers(() => db);

test("plans are seeded and readable by signed-in users only", async () => {
  const user = await createUser(db);
  const { rows } = await db.queryAs(user, "select id, max_seats, max_projects, monthly_credits::int from app_public.plans order by monthly_credits");
  expect(rows).toEqual([
    { id: "free", max_seats: 3, max_projects: 3, monthly_credits: 100 },
    { id: "pro", max_seats: 10, max_projects: 50, monthly_credits: 5000 },
    { id: "enterprise", max_seats: null, max_projects: null, monthly_credits: 50000 },
  ]);
  await expect(db.queryAs(null, "select * from app_public.plans")).rejects.toThrow(/permission denied/);
  await expect(db.queryAs(user, "update app_public.plans set max_seats = 1000")).rejects.toThrow(/permission denied/);
  const org = await createOrganization(db, user);
  await expect(db.owner.query("update app_public.organizations set plan_id = 'nope' where id = $1", [org.id])).rejects.toThrow(/foreign key/);
});

test("limits: SEAT_LIMIT_REACHED and PROJECT_LIMIT_REACHED on the free plan, lifted by a bigger plan", async () => {
  const { a } = await twoTenants(db); // 3 seats: full on free
  const extra = await createUser(db);
  expect(await codeOf(addMember(db, a.org.id, extra))).toBe("SEAT_LIMIT_REACHED");
  for (let i = 0; i < 3; i++) {
    await db.queryAs(a.member, "insert into app_public.projects (organization_id, name) values ($1, $2)", [a.org.id, `P${i}`]);
  }
  expect(await codeOf(db.queryAs(a.member, "insert into app_public.projects (organization_id, name) values ($1, 'P4')", [a.org.id]))).toBe("PROJECT_LIMIT_REACHED");
  // a deleted project frees its slot; restoring it when full is refused
  const { rows } = await db.queryAs(a.admin, "select id from app_public.projects where organization_id = $1 order by created_at limit 1", [a.org.id]);
  await db.queryAs(a.admin, "select app_public.delete_project($1)", [rows[0].id]);
  await db.queryAs(a.member, "insert into app_public.projects (organization_id, name) values ($1, 'P5')", [a.org.id]);
  expect(await codeOf(db.queryAs(a.admin, "select app_public.restore_project($1)", [rows[0].id]))).toBe("PROJECT_LIMIT_REACHED");
  await db.owner.query("update app_public.organizations set plan_id = 'enterprise' where id = $1", [a.org.id]);
  await addMember(db, a.org.id, extra);
  await db.queryAs(a.admin, "select app_public.restore_project($1)", [rows[0].id]);
  expect(await counters(a.org.id)).toMatchObject({ seat_count: 4, project_count: 4 });
  await expectCountersExact();
});

test("assert_seat_available counts extra seats and reserved seats", async () => {
  const owner = await createUser(db);
  const org = await createOrganization(db, owner);
  await db.owner.query("select app_private.assert_seat_available($1, 2)", [org.id]);
  expect(await codeOf(db.owner.query("select app_private.assert_seat_available($1, 3)", [org.id]))).toBe("SEAT_LIMIT_REACHED");
  expect(await codeOf(db.owner.query("select app_private.assert_seat_available($1)", ["00000000-0000-7000-8000-000000000000"]))).toBe("NOT_FOUND");
});

describe("concurrency: limits hold with many real connections", () => {
  let pool: pg.Pool;
  beforeAll(() => {
    pool = new pg.Pool({ connectionString: db.authUrl, max: 25 });
    pool.on("error", () => {});
  });
  afterAll(() => pool.end());

  async function asUser(userId: string, sql: string, values: unknown[]) {
    const client = await pool.connect();
    try {
      await client.query("begin");
      await client.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true)", [userId]);
      await client.query("select app_hidden.start_request()"); // as every request does (db/transaction.ts)
      await client.query(sql, values);
      await client.query("commit");
    } catch (error) {
      await client.query("rollback").catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  test("60 concurrent project creations on a free plan: exactly 3 succeed", async () => {
    const owner = await createUser(db);
    const org = await createOrganization(db, owner, "Race Projects");
    const results = await Promise.allSettled(
      Array.from({ length: 60 }, (_, i) =>
        asUser(owner.userId, "insert into app_public.projects (organization_id, name) values ($1, $2)", [org.id, `P${i}`]),
      ),
    );
    const ok = results.filter((r) => r.status === "fulfilled").length;
    const codes = new Set(results.flatMap((r) => (r.status === "rejected" ? [(r.reason as any).detail] : [])));
    expect(ok).toBe(3);
    expect([...codes]).toEqual(["PROJECT_LIMIT_REACHED"]);
    expect((await counters(org.id)).project_count).toBe(3);
    await expectCountersExact();
  });

  test("60 concurrent member additions on a pro plan (10 seats, 1 taken): exactly 9 succeed", async () => {
    const owner = await createUser(db);
    const org = await createOrganization(db, owner, "Race Seats");
    await db.owner.query("update app_public.organizations set plan_id = 'pro' where id = $1", [org.id]);
    const users = await Promise.all(Array.from({ length: 60 }, () => createUser(db)));
    const ownerPool = new pg.Pool({ connectionString: db.ownerUrl, max: 25 });
    try {
      const results = await Promise.allSettled(
        users.map((u) =>
          ownerPool.query("insert into app_public.organization_members (organization_id, user_id) values ($1, $2)", [org.id, u.userId]),
        ),
      );
      const ok = results.filter((r) => r.status === "fulfilled").length;
      const codes = new Set(results.flatMap((r) => (r.status === "rejected" ? [(r.reason as any).detail] : [])));
      expect(ok).toBe(9);
      expect([...codes]).toEqual(["SEAT_LIMIT_REACHED"]);
    } finally {
      await ownerPool.end();
    }
    expect((await counters(org.id)).seat_count).toBe(10);
    await expectCountersExact();
  });
});
