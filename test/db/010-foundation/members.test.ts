// Membership (db/functions/010-foundation/members.sql): assert_member, the precondition of every
// member-only function; and app_public.organization_members under RLS.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { twoTenants, createUser, createOrganization } from "../../helpers/fixtures.ts";
import { createApiKey, expectCode } from "../../helpers/team.ts";
import { withSettings } from "../../../db/transaction.ts";

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

describe("assert_member, as the SECURITY DEFINER functions call it (owner role, caller's claims)", () => {
  const check = (claims: Record<string, string | null>, organizationId: string | null) =>
    withSettings(db.owner, claims, (c) => c.query("select app_private.assert_member($1)", [organizationId]));

  test("members and live keys of the organization pass; anyone else is NOT_FOUND, nobody NOT_AUTHENTICATED", async () => {
    for (const who of [cast.a.owner, cast.a.admin, cast.a.member]) {
      await check({ "jwt.claims.user_id": who.userId }, cast.a.org.id);
    }
    for (const who of [cast.b.owner, cast.b.admin, cast.b.member]) {
      await expectCode(check({ "jwt.claims.user_id": who.userId }, cast.a.org.id), "NOT_FOUND");
    }
    await expectCode(check({ "jwt.claims.user_id": cast.a.member.userId }, null), "NOT_FOUND");
    await expectCode(check({ "jwt.claims.user_id": cast.a.member.userId }, "00000000-0000-7000-8000-000000000000"), "NOT_FOUND");
    await expectCode(check({}, cast.a.org.id), "NOT_AUTHENTICATED");
    await expectCode(check({ "jwt.claims.user_id": "" }, cast.a.org.id), "NOT_AUTHENTICATED");

    const key = await createApiKey(db, cast.a.admin, cast.a.org.id);
    await check({ "jwt.claims.api_key_id": key.id }, cast.a.org.id);
    await expectCode(check({ "jwt.claims.api_key_id": key.id }, cast.b.org.id), "NOT_FOUND");
    await db.queryAs(cast.a.admin, "select app_public.revoke_api_key($1)", [key.id]);
    await expectCode(check({ "jwt.claims.api_key_id": key.id }, cast.a.org.id), "NOT_FOUND");
  });

  test("a member of a deleted organization is no longer a member", async () => {
    const owner = await createUser(db);
    const org = await createOrganization(db, owner, "Going Away");
    await check({ "jwt.claims.user_id": owner.userId }, org.id);
    await db.queryAs(owner, "select app_public.delete_organization($1)", [org.id]);
    await expectCode(check({ "jwt.claims.user_id": owner.userId }, org.id), "NOT_FOUND");
  });

  test("app roles cannot call it directly", async () => {
    await expect(db.queryAs(cast.a.member, "select app_private.assert_member($1)", [cast.a.org.id])).rejects.toMatchObject({ code: "42501" });
  });
});
