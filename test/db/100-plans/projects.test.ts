// Projects (db/functions/100-plans/projects.sql): validation, soft delete and restore, who may do
// which, and other tenants.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { twoTenants } from "../../helpers/fixtures.ts";
import { codeOf } from "../../helpers/codes.ts";
import { planHelpers } from "../../helpers/plans.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const { expectCountersExact } = planHelpers(() => db);

test("projects: cross-tenant reads and writes are refused; members cannot delete, admins can", async () => {
  const { a, b } = await twoTenants(db);
  const { rows } = await db.queryAs(a.member, "insert into app_public.projects (organization_id, name) values ($1, 'Secret') returning id", [a.org.id]);
  const id = rows[0].id;
  expect((await db.queryAs(b.owner, "select * from app_public.projects where id = $1", [id])).rows).toEqual([]);
  expect((await db.queryAs(b.owner, "select * from app_public.usage_counters where organization_id = $1", [a.org.id])).rows).toEqual([]);
  expect((await db.queryAs(b.owner, "update app_public.projects set name = 'Mine' where id = $1", [id])).rowCount).toBe(0);
  expect(await codeOf(db.queryAs(b.owner, "insert into app_public.projects (organization_id, name) values ($1, 'Intruder')", [a.org.id]))).toBe("NOT_FOUND");
  expect(await codeOf(db.queryAs(b.owner, "select app_public.delete_project($1)", [id]))).toBe("NOT_FOUND");
  expect(await codeOf(db.queryAs(b.owner, "select app_public.restore_project($1)", [id]))).toBe("NOT_FOUND");
  expect(await codeOf(db.queryAs(a.member, "select app_public.delete_project($1)", [id]))).toBe("FORBIDDEN");
  await db.queryAs(a.admin, "select app_public.delete_project($1)", [id]);
  // a member no longer sees it, an admin does
  expect((await db.queryAs(a.member, "select * from app_public.projects where id = $1", [id])).rows).toEqual([]);
  expect((await db.queryAs(a.admin, "select * from app_public.projects where id = $1", [id])).rows).toHaveLength(1);
  await expect(db.queryAs(a.owner, "update app_public.projects set deleted_at = null where id = $1", [id])).rejects.toThrow(/permission denied/);
  await expect(db.queryAs(a.owner, "update app_public.usage_counters set project_count = 0")).rejects.toThrow(/permission denied/);
  // bad input
  expect(await codeOf(db.queryAs(a.member, "insert into app_public.projects (organization_id, name) values ($1, '   ')", [a.org.id]))).toBe("INVALID_NAME");
  expect(await codeOf(db.queryAs(a.member, "insert into app_public.projects (organization_id, name) values ($1, $2)", [a.org.id, "x".repeat(101)]))).toBe("INVALID_NAME");
  expect(await codeOf(db.queryAs(a.admin, "select app_public.delete_project($1)", ["00000000-0000-7000-8000-000000000000"]))).toBe("NOT_FOUND");
  await expectCountersExact();
});
