// Spend caps are a new tenant-chosen list (issue 21): one organization's admins racing to create
// caps past the bound get exactly the bound (50, counted under the credit-account lock), and the
// caps of one organization never reach another's reservations; a member cannot set a cap that
// would block their own admins' spending.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { twoTenants } from "../helpers/fixtures.ts";
import { codeOf } from "../helpers/codes.ts";
import { setPlan } from "../helpers/team.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

test("60 racing cap creations for 60 different targets: exactly 50 exist, the rest SPEND_CAP_LIMIT_REACHED", async () => {
  const { a } = await twoTenants(db);
  await setPlan(db, a.org.id, "enterprise"); // room for the 20 projects
  const projects: string[] = [];
  for (let i = 0; i < 20; i++) {
    const { rows } = await db.owner.query("insert into app_public.projects (organization_id, name) values ($1, $2) returning id", [a.org.id, `P${i}`]);
    projects.push(rows[0].id);
  }
  const periods = ["day", "week", "month"];
  const outcomes = await Promise.all(Array.from({ length: 60 }, (_, i) =>
    codeOf(db.queryAs(a.owner, "select id from app_public.set_spend_cap($1, $2, 100, $3)", [a.org.id, periods[i % 3], projects[Math.floor(i / 3)]]))));
  expect(outcomes.filter((code) => code === "SPEND_CAP_LIMIT_REACHED")).toHaveLength(10);
  expect(outcomes.filter((code) => code === null)).toHaveLength(50);
  const { rows } = await db.owner.query("select count(*)::int as n from app_public.credit_spend_caps where organization_id = $1", [a.org.id]);
  expect(rows[0].n).toBe(50);
});

test("a cap of one organization never refuses another's reservation, and a member cannot set one", async () => {
  const { a, b } = await twoTenants(db);
  await db.owner.query("select app_private.grant_credits($1, 1000, 'purchase', null, null)", [b.org.id]);
  // a's admin tries b's organization: nothing is created there
  expect(await codeOf(db.queryAs(a.admin, "select id from app_public.set_spend_cap($1, 'day', 1)", [b.org.id]))).toBe("NOT_FOUND");
  expect(await codeOf(db.queryAs(b.member, "select id from app_public.set_spend_cap($1, 'day', 1)", [b.org.id]))).toBe("FORBIDDEN");
  await db.queryAs(a.admin, "select id from app_public.set_spend_cap($1, 'day', 1)", [a.org.id]);
  const { rows } = await db.owner.query("select count(*)::int as n from app_public.credit_spend_caps where organization_id = $1", [b.org.id]);
  expect(rows[0].n).toBe(0);
  const reserved = await db.queryAs(b.member, "select id from app_public.reserve_credits($1, 500, 'after-a-cap', 600)", [b.org.id]);
  expect(reserved.rows).toHaveLength(1);
});
