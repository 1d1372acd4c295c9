// mfa-policy.sql and the MFA clause of start_request(): after an organization's grace period,
// an aal1 session of a member sees nothing of it (and is told why by
// myOrganizationsRequiringMfa); the same member after a second factor sees it.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createOrganization, createUser } from "../../helpers/fixtures.ts";
import { codeOf } from "../../helpers/sql-accounts.ts";
import { enrolTotpInSql } from "../../helpers/mfa-sql.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

test("an aal1 member sees nothing of an organization requiring MFA; after a second factor they see it", async () => {
  const owner = await createUser(db);
  const member = await createUser(db);
  const org = await createOrganization(db, owner);
  await db.owner.query("insert into app_public.organization_members (organization_id, user_id, role) values ($1, $2, 'member')", [org.id, member.userId]);
  expect(await codeOf(db.queryAs(owner, "select app_public.set_organization_mfa_required($1, true, 0)", [org.id]))).toBe("MFA_NOT_ENROLLED");
  await enrolTotpInSql(db, owner);
  expect(await codeOf(db.queryAs(member, "select app_public.set_organization_mfa_required($1, true, 0)", [org.id]))).toBe("FORBIDDEN");
  const { rows } = await db.queryAs(owner, "select mfa_required_at > now() + interval '6 days' as later from app_public.set_organization_mfa_required($1, true)", [org.id]);
  expect(rows[0].later).toBe(true); // seven days' grace by default
  const sees = async () => (await db.queryAs(member, "select id from app_public.organizations where id = $1", [org.id])).rows.length;
  expect(await sees()).toBe(1); // within the grace period
  expect((await db.queryAs(owner, "select user_id from app_public.organization_members_without_mfa($1)", [org.id])).rows).toEqual([{ user_id: member.userId }]);

  await db.owner.query("update app_public.organizations set mfa_required_at = now() - interval '1 second' where id = $1", [org.id]);
  expect(await sees()).toBe(0);
  expect((await db.queryAs(member, "select count(*)::int as n from app_public.organization_members where organization_id = $1", [org.id])).rows[0].n).toBe(0);
  expect((await db.queryAs(member, "select organization_id from app_public.my_organizations_requiring_mfa()")).rows).toEqual([{ organization_id: org.id }]);

  const { factorId } = await enrolTotpInSql(db, member); // confirming a factor makes this session aal2
  expect(factorId).toBeTruthy();
  expect(await sees()).toBe(1);
  expect((await db.queryAs(member, "select count(*)::int as n from app_public.my_organizations_requiring_mfa()")).rows[0].n).toBe(0);

  // a downgraded session (aal1 again) is shut out again
  await db.owner.query("update app_private.sessions set aal = 'aal1' where id = $1", [member.sessionId]);
  expect(await sees()).toBe(0);
});

test("the last factor cannot be removed while an organization requires MFA; removal needs a recent second factor", async () => {
  const owner = await createUser(db);
  const org = await createOrganization(db, owner);
  const { factorId } = await enrolTotpInSql(db, owner);
  await db.queryAs(owner, "select app_public.set_organization_mfa_required($1, true, 0)", [org.id]);
  expect(await codeOf(db.queryAs(owner, "select app_public.remove_mfa_factor($1)", [factorId]))).toBe("LAST_MFA_FACTOR");
  await db.owner.query("update app_private.sessions set aal2_at = now() - interval '16 minutes' where id = $1", [owner.sessionId]);
  expect(await codeOf(db.queryAs(owner, "select app_public.remove_mfa_factor($1)", [factorId]))).toBe("MFA_STEP_UP_REQUIRED");
});
