// assert_sso_admin (sso-admins.sql): admins and owners of an organization the caller sees.
import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { twoTenants } from "../../helpers/fixtures.ts";
import { codeOf } from "../../helpers/sql-accounts.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

test("owners and admins pass; a member is FORBIDDEN; another organization and a null id are NOT_FOUND", async () => {
  const { a, b } = await twoTenants(db);
  expect(await codeOf(db.queryAs(a.member, "select app_public.add_sso_domain($1, 'm.test')", [a.org.id]))).toBe("FORBIDDEN");
  expect(await codeOf(db.queryAs(b.admin, "select app_public.add_sso_domain($1, 'm.test')", [a.org.id]))).toBe("NOT_FOUND");
  expect(await codeOf(db.queryAs(a.admin, "select app_public.add_sso_domain(null, 'm.test')"))).toBe("NOT_FOUND");
  expect((await db.queryAs(a.owner, "select domain from app_public.add_sso_domain($1, 'owner.test')", [a.org.id])).rows[0].domain).toBe("owner.test");
});
