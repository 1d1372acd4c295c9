// Audit columns (db/functions/010-foundation/audit-columns.sql): created_at and created_by are
// set once on insert, updated_at moves forward on every update; the trigger is the only writer.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { twoTenants, createUser } from "../../helpers/fixtures.ts";
import { withSettings } from "../../../db/transaction.ts";

let db: TestDatabase;
let cast: Awaited<ReturnType<typeof twoTenants>>;
beforeAll(async () => {
  db = await createTestDatabase();
  cast = await twoTenants(db);
});
afterAll(() => db?.drop());

test("created_at and updated_at are kept by the trigger, not by the caller", async () => {
  const before = await db.owner.query("select created_at, updated_at from app_public.users where id = $1", [cast.a.admin.userId]);
  await db.owner.query("update app_public.users set name = 'Touched', created_at = '2000-01-01' where id = $1", [cast.a.admin.userId]);
  const after = await db.owner.query("select created_at, updated_at from app_public.users where id = $1", [cast.a.admin.userId]);
  expect(after.rows[0].created_at).toEqual(before.rows[0].created_at);
  expect(after.rows[0].updated_at.getTime()).toBeGreaterThan(before.rows[0].updated_at.getTime());
});

test("created_by comes from the caller's claims on insert and stays; the caller cannot set it", async () => {
  const stranger = await createUser(db);
  const { rows } = await db.queryAs(cast.a.member,
    "insert into app_public.projects (organization_id, name) values ($1, 'Audited') returning id, created_by, created_at", [cast.a.org.id]);
  expect(rows[0].created_by).toBe(cast.a.member.userId);
  await db.queryAs(cast.a.admin, "update app_public.projects set name = 'Renamed' where id = $1", [rows[0].id]);
  // even the owner role, acting with someone else's claims, cannot rewrite who created it or when
  await withSettings(db.owner, { "jwt.claims.user_id": stranger.userId }, (c) =>
    c.query("update app_public.projects set created_by = $2, created_at = '2000-01-01' where id = $1", [rows[0].id, stranger.userId]));
  const after = await db.owner.query("select created_by, created_at, name from app_public.projects where id = $1", [rows[0].id]);
  expect(after.rows[0]).toEqual({ created_by: cast.a.member.userId, created_at: rows[0].created_at, name: "Renamed" });
  // clients have no column privilege on it at all
  await expect(db.queryAs(cast.a.member,
    "insert into app_public.projects (organization_id, name, created_by) values ($1, 'Forged', $2)", [cast.a.org.id, stranger.userId]))
    .rejects.toMatchObject({ code: "42501" });
});

test("updated_at moves strictly forward, even for two updates in one transaction", async () => {
  const values = await withSettings(db.owner, {}, async (c) => {
    const stamps: number[] = [];
    for (const name of ["One", "Two", "Three"]) {
      const { rows } = await c.query("update app_public.users set name = $2 where id = $1 returning updated_at", [cast.b.member.userId, name]);
      stamps.push(rows[0].updated_at.getTime());
    }
    return stamps;
  });
  expect(values[1]).toBeGreaterThan(values[0]);
  expect(values[2]).toBeGreaterThan(values[1]);
});
