// app_public.organizations under RLS, as each role (db/functions/010-foundation/organizations.sql):
// create_organization, the name rule and who may rename.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { twoTenants, createUser } from "../../helpers/fixtures.ts";

let db: TestDatabase;
let cast: Awaited<ReturnType<typeof twoTenants>>;
beforeAll(async () => {
  db = await createTestDatabase();
  cast = await twoTenants(db);
});
afterAll(() => db?.drop());


test("members see their organization and nothing of another", async () => {
  for (const who of [cast.b.owner, cast.b.admin, cast.b.member]) {
    const { rows } = await db.queryAs(who, "select id from app_public.organizations");
    expect(rows).toEqual([{ id: cast.b.org.id }]);
    const other = await db.queryAs(who, "select id from app_public.organizations where id = $1 or slug = $2", [cast.a.org.id, cast.a.org.slug]);
    expect(other.rows).toEqual([]);
  }
});

test("anonymous sees no organizations", async () => {
  await expect(db.queryAs(null, "select id from app_public.organizations")).rejects.toThrow(/permission denied/);
});

test("nobody from another organization can rename, delete or insert one", async () => {
  const rename = await db.queryAs(cast.b.owner, "update app_public.organizations set name = 'Taken over' where id = $1", [cast.a.org.id]);
  expect(rename.rowCount).toBe(0);
  await expect(db.queryAs(cast.b.owner, "delete from app_public.organizations where id = $1", [cast.a.org.id])).rejects.toThrow(/permission denied/);
  await expect(db.queryAs(cast.b.owner, "insert into app_public.organizations (slug, name) values ('sneaky', 'Sneaky')")).rejects.toThrow(/permission denied/);
  await expect(
    db.queryAs(cast.b.owner, "select app_public.delete_organization($1)", [cast.a.org.id]),
  ).rejects.toMatchObject({ detail: "NOT_FOUND" });
  const { rows } = await db.owner.query("select name, deleted_at from app_public.organizations where id = $1", [cast.a.org.id]);
  expect(rows[0]).toEqual({ name: "Alpha Org", deleted_at: null });
});

test("members cannot rename (FORBIDDEN); admins and owners can", async () => {
  await expect(
    db.queryAs(cast.a.member, "update app_public.organizations set name = 'By member' where id = $1", [cast.a.org.id]),
  ).rejects.toMatchObject({ detail: "FORBIDDEN" });
  const byAdmin = await db.queryAs(cast.a.admin, "update app_public.organizations set name = 'Alpha Org' where id = $1", [cast.a.org.id]);
  expect(byAdmin.rowCount).toBe(1);
});

test("only the name is writable by clients", async () => {
  await expect(
    db.queryAs(cast.a.owner, "update app_public.organizations set plan_id = 'enterprise' where id = $1", [cast.a.org.id]),
  ).rejects.toThrow(/permission denied/);
  await expect(
    db.queryAs(cast.a.owner, "update app_public.organizations set slug = 'new-slug' where id = $1", [cast.a.org.id]),
  ).rejects.toThrow(/permission denied/);
});

test("create_organization validates the name and needs a signed-in user", async () => {
  const user = await createUser(db);
  for (const name of ["", "   ", "x".repeat(101), null]) {
    await expect(db.queryAs(user, "select app_public.create_organization($1)", [name])).rejects.toMatchObject({ detail: "INVALID_NAME" });
  }
  await expect(db.queryAs({ userId: null }, "select app_public.create_organization('Anon')")).rejects.toThrow(/permission denied/);
});
