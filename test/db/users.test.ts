// app_public.users under RLS, as each role.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { twoTenants, createUser } from "../helpers/fixtures.ts";

let db: TestDatabase;
let cast: Awaited<ReturnType<typeof twoTenants>>;
beforeAll(async () => {
  db = await createTestDatabase();
  cast = await twoTenants(db);
});
afterAll(() => db?.drop());

test("a user sees themselves and the members of their organizations, nobody else", async () => {
  const { rows } = await db.queryAs(cast.a.member, "select id from app_public.users order by id");
  const expected = [cast.a.owner, cast.a.admin, cast.a.member].map((u) => u.userId).sort();
  expect(rows.map((r) => r.id).sort()).toEqual(expected);
});

test("a user in no organization sees only their own row", async () => {
  const loner = await createUser(db);
  const { rows } = await db.queryAs(loner, "select id from app_public.users");
  expect(rows).toEqual([{ id: loner.userId }]);
});

test("anonymous sees no users", async () => {
  const { rows } = await db.queryAs(null, "select id from app_public.users");
  expect(rows).toEqual([]);
});

test("a user may rename only themselves", async () => {
  const self = await db.queryAs(cast.a.member, "update app_public.users set name = 'Renamed' where id = $1", [cast.a.member.userId]);
  expect(self.rowCount).toBe(1);
  const colleague = await db.queryAs(cast.a.member, "update app_public.users set name = 'Hacked' where id = $1", [cast.a.owner.userId]);
  expect(colleague.rowCount).toBe(0);
  const stranger = await db.queryAs(cast.a.member, "update app_public.users set name = 'Hacked' where id = $1", [cast.b.owner.userId]);
  expect(stranger.rowCount).toBe(0);
  const { rows } = await db.owner.query("select name from app_public.users where id = any($1)", [[cast.a.owner.userId, cast.b.owner.userId]]);
  expect(rows.map((r) => r.name)).not.toContain("Hacked");
});

test("users cannot change their email, insert users or delete users directly", async () => {
  await expect(db.queryAs(cast.a.member, "update app_public.users set email = 'x@y.zz' where id = $1", [cast.a.member.userId])).rejects.toThrow(/permission denied/);
  await expect(db.queryAs(cast.a.member, "insert into app_public.users (email, name) values ('n@e.ww', 'N')")).rejects.toThrow(/permission denied/);
  await expect(db.queryAs(cast.a.member, "delete from app_public.users where id = $1", [cast.b.member.userId])).rejects.toThrow(/permission denied/);
});

test("created_at and updated_at are kept by the trigger, not by the caller", async () => {
  const before = await db.owner.query("select created_at, updated_at from app_public.users where id = $1", [cast.a.admin.userId]);
  await db.owner.query("update app_public.users set name = 'Touched', created_at = '2000-01-01' where id = $1", [cast.a.admin.userId]);
  const after = await db.owner.query("select created_at, updated_at from app_public.users where id = $1", [cast.a.admin.userId]);
  expect(after.rows[0].created_at).toEqual(before.rows[0].created_at);
  expect(after.rows[0].updated_at.getTime()).toBeGreaterThan(before.rows[0].updated_at.getTime());
});

test("app roles cannot read password hashes or sessions", async () => {
  await expect(db.queryAs(cast.a.owner, "select * from app_private.user_secrets")).rejects.toThrow(/permission denied/);
  await expect(db.queryAs(cast.a.owner, "select * from app_private.sessions")).rejects.toThrow(/permission denied/);
  await expect(db.queryAs(null, "select * from app_private.sessions")).rejects.toThrow(/permission denied/);
});
