import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

test("the test database is migrated and owned by app_owner", async () => {
  const { rows } = await db.root.query(
    "select pg_get_userbyid(datdba) as owner from pg_database where datname = current_database()",
  );
  expect(rows[0].owner).toBe("app_owner");
  const tables = await db.owner.query("select count(*)::int as n from pg_tables where schemaname = 'app_public'");
  expect(tables.rows[0].n).toBeGreaterThan(0);
});
