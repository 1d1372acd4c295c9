// Roles and ownership in SQL: each role trying each action, LAST_OWNER on every path, ownership
// transfer, the audit trail, and two owners demoting each other at the same moment.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { addMember, createOrganization, createUser, twoTenants, type TestUser } from "../../helpers/fixtures.ts";
import { expectCode, setPlan, tally } from "../../helpers/team.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

async function team() {
  const owner = await createUser(db, "Owner");
  const org = await createOrganization(db, owner, "Roles Co");
  await setPlan(db, org.id, "enterprise");
  const admin = await createUser(db, "Admin");
  const member = await createUser(db, "Member");
  const other = await createUser(db, "Other Member");
  await addMember(db, org.id, admin, "admin");
  await addMember(db, org.id, member, "member");
  await addMember(db, org.id, other, "member");
  return { org: org.id, owner, admin, member, other };
}

const role = async (org: string, user: TestUser) =>
  (await db.owner.query("select role::text from app_public.organization_members where organization_id = $1 and user_id = $2", [org, user.userId]))
    .rows[0]?.role ?? null;
const changeRole = (as: TestUser, org: string, user: TestUser, to: string) =>
  db.queryAs(as, "select * from app_public.change_member_role($1, $2, $3)", [org, user.userId, to]);
const remove = (as: TestUser, org: string, user: TestUser) =>
  db.queryAs(as, "select app_public.remove_member($1, $2)", [org, user.userId]);

test("members change nothing", async () => {
  const t = await team();
  await expectCode(changeRole(t.member, t.org, t.other, "admin"), "FORBIDDEN");
  await expectCode(changeRole(t.member, t.org, t.member, "admin"), "FORBIDDEN");
  await expectCode(remove(t.member, t.org, t.other), "FORBIDDEN");
  await expectCode(db.queryAs(t.member, "select app_public.transfer_ownership($1, $2)", [t.org, t.member.userId]), "FORBIDDEN");
  expect(await role(t.org, t.other)).toBe("member");
});

test("admins change roles up to admin and remove members, but cannot touch owners or make owners", async () => {
  const t = await team();
  const { rows } = await changeRole(t.admin, t.org, t.member, "admin");
  expect(rows[0]).toMatchObject({ user_id: t.member.userId, role: "admin" });
  await changeRole(t.admin, t.org, t.member, "member");
  await expectCode(changeRole(t.admin, t.org, t.member, "owner"), "FORBIDDEN");
  await expectCode(changeRole(t.admin, t.org, t.owner, "admin"), "FORBIDDEN");
  await expectCode(remove(t.admin, t.org, t.owner), "FORBIDDEN");
  await expectCode(db.queryAs(t.admin, "select app_public.transfer_ownership($1, $2)", [t.org, t.admin.userId]), "FORBIDDEN");
  expect((await remove(t.admin, t.org, t.other)).rows[0].remove_member).toBe(true);
  expect(await role(t.org, t.other)).toBeNull();
  await expectCode(remove(t.admin, t.org, t.other), "NOT_FOUND");
  await expectCode(changeRole(t.admin, t.org, t.other, "admin"), "NOT_FOUND");
  await expectCode(changeRole(t.admin, t.org, t.member, null as unknown as string), "INVALID_ROLE");
  expect(await role(t.org, t.owner)).toBe("owner");
});

test("owners make owners, demote and remove owners; the last owner cannot be demoted, removed or leave", async () => {
  const t = await team();
  await expectCode(changeRole(t.owner, t.org, t.owner, "admin"), "LAST_OWNER");
  await expectCode(remove(t.owner, t.org, t.owner), "LAST_OWNER");
  await expectCode(db.queryAs(t.owner, "select app_public.leave_organization($1)", [t.org]), "LAST_OWNER");
  // nor by going around the functions
  await expectCode(
    db.owner.query("delete from app_public.organization_members where organization_id = $1 and user_id = $2", [t.org, t.owner.userId]),
    "LAST_OWNER",
  );
  await expectCode(
    db.owner.query("update app_public.organization_members set role = 'member' where organization_id = $1", [t.org]),
    "LAST_OWNER",
  );

  await changeRole(t.owner, t.org, t.admin, "owner");
  expect(await role(t.org, t.admin)).toBe("owner");
  await changeRole(t.admin, t.org, t.owner, "member"); // now an owner, may demote the other owner
  expect(await role(t.org, t.owner)).toBe("member");
  await expectCode(db.queryAs(t.admin, "select app_public.leave_organization($1)", [t.org]), "LAST_OWNER");
  await changeRole(t.admin, t.org, t.member, "owner");
  await remove(t.member, t.org, t.admin);
  expect(await role(t.org, t.admin)).toBeNull();
});

test("anyone but the last owner can leave; leaving frees the seat", async () => {
  const t = await team();
  const seats = async () =>
    (await db.owner.query("select seat_count from app_public.usage_counters where organization_id = $1", [t.org])).rows[0].seat_count;
  const before = await seats();
  await db.queryAs(t.member, "select app_public.leave_organization($1)", [t.org]);
  await db.queryAs(t.admin, "select app_public.leave_organization($1)", [t.org]);
  expect(await role(t.org, t.member)).toBeNull();
  expect(await seats()).toBe(before - 2);
  await expectCode(db.queryAs(t.member, "select app_public.leave_organization($1)", [t.org]), "NOT_FOUND");
});

test("transferOwnership: the target becomes owner, the caller admin; only to a member", async () => {
  const t = await team();
  const { rows } = await db.queryAs(t.owner, "select * from app_public.transfer_ownership($1, $2)", [t.org, t.member.userId]);
  expect(rows[0]).toMatchObject({ user_id: t.member.userId, role: "owner" });
  expect(await role(t.org, t.owner)).toBe("admin");
  const outsider = await createUser(db, "Outsider");
  await expectCode(db.queryAs(t.member, "select app_public.transfer_ownership($1, $2)", [t.org, outsider.userId]), "NOT_FOUND");
  await expectCode(db.queryAs(t.member, "select app_public.transfer_ownership($1, $2)", [t.org, t.member.userId]), "INVALID_TARGET");
  await expectCode(db.queryAs(t.owner, "select app_public.transfer_ownership($1, $2)", [t.org, t.owner.userId]), "FORBIDDEN");
  const { rows: audit } = await db.owner.query(
    "select action, created_by, details from app_public.audit_events where organization_id = $1 and action = 'organization.ownership_transferred'",
    [t.org],
  );
  expect(audit).toEqual([{ action: "organization.ownership_transferred", created_by: t.owner.userId, details: { from: t.owner.userId } }]);
});

test("every change lands in the audit log with who did it", async () => {
  const t = await team();
  await changeRole(t.admin, t.org, t.member, "admin");
  await remove(t.owner, t.org, t.other);
  await db.queryAs(t.member, "select app_public.leave_organization($1)", [t.org]);
  const { rows } = await db.owner.query(
    `select action, target_id, created_by, details from app_public.audit_events
     where organization_id = $1 and action in ('member.role_changed', 'member.removed') order by created_at`,
    [t.org],
  );
  expect(rows).toEqual([
    { action: "member.role_changed", target_id: t.member.userId, created_by: t.admin.userId, details: { from: "member", to: "admin" } },
    { action: "member.removed", target_id: t.other.userId, created_by: t.owner.userId, details: { role: "member" } },
    { action: "member.removed", target_id: t.member.userId, created_by: t.member.userId, details: { role: "admin" } },
  ]);
});

test("cross-tenant: nobody from B can change, remove or transfer in A", async () => {
  const { a, b } = await twoTenants(db);
  for (const who of [b.owner, b.admin, b.member]) {
    await expectCode(changeRole(who, a.org.id, a.member, "admin"), "NOT_FOUND");
    await expectCode(remove(who, a.org.id, a.member), "NOT_FOUND");
    await expectCode(db.queryAs(who, "select app_public.leave_organization($1)", [a.org.id]), "NOT_FOUND");
    await expectCode(db.queryAs(who, "select app_public.transfer_ownership($1, $2)", [a.org.id, who.userId]), "NOT_FOUND");
    // B's users cannot be targeted in A either
    await expectCode(changeRole(a.owner, a.org.id, who, "admin"), "NOT_FOUND");
  }
  expect(await role(a.org.id, a.member)).toBe("member");
});

test("two owners demoting each other at the same moment: one stays owner", async () => {
  for (let round = 0; round < 10; round++) {
    const t = await team();
    await changeRole(t.owner, t.org, t.admin, "owner");
    const result = await tally([
      changeRole(t.owner, t.org, t.admin, "member"),
      changeRole(t.admin, t.org, t.owner, "member"),
    ]);
    expect(result.ok).toBe(1);
    expect(Object.keys(result.codes).every((code) => code === "LAST_OWNER" || code === "FORBIDDEN")).toBe(true);
    const { rows } = await db.owner.query(
      "select count(*)::int as n from app_public.organization_members where organization_id = $1 and role = 'owner'",
      [t.org],
    );
    expect(rows[0].n).toBe(1);
  }
});

test("many owners all leaving at once: exactly one stays", async () => {
  const owner = await createUser(db, "First");
  const org = await createOrganization(db, owner, "Exodus");
  await setPlan(db, org.id, "enterprise");
  const owners = [owner];
  for (let i = 0; i < 11; i++) {
    const u = await createUser(db, `Owner ${i}`);
    await addMember(db, org.id, u, "owner");
    owners.push(u);
  }
  const result = await tally(owners.map((u) => db.queryAs(u, "select app_public.leave_organization($1)", [org.id])));
  expect(result).toEqual({ ok: 11, codes: { LAST_OWNER: 1 } });
  const { rows } = await db.owner.query("select role::text from app_public.organization_members where organization_id = $1", [org.id]);
  expect(rows).toEqual([{ role: "owner" }]);
});
