// app_public.organization_members under RLS, and the audit trail of membership changes.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { twoTenants, createUser, createOrganization } from "../helpers/fixtures.ts";
import { withSettings } from "../../db/transaction.ts";

let db: TestDatabase;
let cast: Awaited<ReturnType<typeof twoTenants>>;
beforeAll(async () => {
  db = await createTestDatabase();
  cast = await twoTenants(db);
});
afterAll(() => db?.drop());

test("members see their organization's members only", async () => {
  const { rows } = await db.queryAs(cast.a.member, "select organization_id, user_id, role from app_public.organization_members");
  expect(rows).toHaveLength(3);
  expect(new Set(rows.map((r) => r.organization_id))).toEqual(new Set([cast.a.org.id]));
});

test("another organization's members cannot see, add, change or remove members", async () => {
  const seen = await db.queryAs(cast.b.owner, "select * from app_public.organization_members where organization_id = $1", [cast.a.org.id]);
  expect(seen.rows).toEqual([]);
  await expect(
    db.queryAs(cast.b.owner, "insert into app_public.organization_members (organization_id, user_id, role) values ($1, $2, 'owner')", [cast.a.org.id, cast.b.owner.userId]),
  ).rejects.toThrow(/permission denied/);
  await expect(
    db.queryAs(cast.b.owner, "update app_public.organization_members set role = 'member' where organization_id = $1", [cast.a.org.id]),
  ).rejects.toThrow(/permission denied/);
  await expect(
    db.queryAs(cast.b.owner, "delete from app_public.organization_members where organization_id = $1", [cast.a.org.id]),
  ).rejects.toThrow(/permission denied/);
  const { rows } = await db.owner.query("select count(*)::int as n from app_public.organization_members where organization_id = $1", [cast.a.org.id]);
  expect(rows[0].n).toBe(3);
});

test("membership changes land in the audit log with who did them", async () => {
  const owner = await createUser(db);
  const org = await createOrganization(db, owner, "Audited");
  const newcomer = await createUser(db);
  // Act as the owner through the owner role with the owner's claims, as a SECURITY DEFINER
  // function would: the audit row records the caller from the claims. One transaction per change,
  // so that created_at orders them (UUIDv7s made in the same millisecond are in random order).
  const asOwner = (sql: string) => withSettings(db.owner, { "jwt.claims.user_id": owner.userId }, (c) => c.query(sql, [org.id, newcomer.userId]));
  await asOwner("insert into app_public.organization_members (organization_id, user_id, role) values ($1, $2, 'member')");
  await asOwner("update app_public.organization_members set role = 'admin' where organization_id = $1 and user_id = $2");
  await asOwner("delete from app_public.organization_members where organization_id = $1 and user_id = $2");
  const { rows } = await db.owner.query(
    "select action, details, created_by from app_public.audit_events where organization_id = $1 and target_id = $2 order by created_at",
    [org.id, newcomer.userId],
  );
  expect(rows).toEqual([
    { action: "member.added", details: { role: "member" }, created_by: owner.userId },
    { action: "member.role_changed", details: { from: "member", to: "admin" }, created_by: owner.userId },
    { action: "member.removed", details: { role: "admin" }, created_by: owner.userId },
  ]);
});
