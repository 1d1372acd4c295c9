// deleteAccount in SQL: password, LAST_OWNER, organizations alone deleted, memberships left,
// personal data removed, the row anonymised, audit history kept without the address.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { addMember, createOrganization, createUser } from "../../helpers/fixtures.ts";
import { codeOf, registerInSql } from "../../helpers/sql-accounts.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

test("LAST_OWNER, then deletion after another owner exists", async () => {
  const u = await registerInSql(db);
  const other = await createUser(db);
  const org = await createOrganization(db, u, "Team");
  await addMember(db, org.id, other, "member");
  expect(await codeOf(db.queryAs(u, "select app_public.delete_account('wrong password')"))).toBe("WRONG_PASSWORD");
  expect(await codeOf(db.queryAs(u, "select app_public.delete_account($1)", [u.password]))).toBe("LAST_OWNER");
  await db.owner.query("update app_public.organization_members set role = 'owner' where organization_id = $1 and user_id = $2", [org.id, other.userId]);
  const solo = await createOrganization(db, u, "Solo");
  await db.owner.query("select app_private.record_audit_event($1, 'invitation.created', 'invitation', null, jsonb_build_object('email', $2::text))", [org.id, u.email]);
  expect(await codeOf(db.queryAs(u, "select app_public.delete_account($1)", [u.password]))).toBeNull();

  const user = await db.owner.query("select email, name, deleted_at is not null as deleted from app_public.users where id = $1", [u.userId]);
  expect(user.rows[0]).toEqual({ email: `deleted-${u.userId}@deleted.invalid`, name: "Deleted user", deleted: true });
  const members = await db.owner.query("select organization_id from app_public.organization_members where user_id = $1", [u.userId]);
  expect(members.rows.map((r) => r.organization_id)).toEqual([solo.id]); // kept only where the organization went with it
  const orgs = await db.owner.query("select id, deleted_at is not null as deleted from app_public.organizations where id = any($1) order by name", [[org.id, solo.id]]);
  expect(orgs.rows).toEqual([{ id: solo.id, deleted: true }, { id: org.id, deleted: false }]);
  const audit = await db.owner.query("select details from app_public.audit_events where organization_id = $1", [org.id]);
  expect(audit.rows.length).toBeGreaterThan(1);
  expect(JSON.stringify(audit.rows)).not.toContain(u.email);
  for (const table of ["app_private.user_secrets", "app_private.sessions", "app_public.user_settings"]) {
    expect((await db.owner.query(`select count(*)::int as n from ${table} where user_id = $1`, [u.userId])).rows[0].n).toBe(0);
  }
  // the audit log is still append-only for everyone else
  await expect(db.owner.query("update app_public.audit_events set details = '{}' where organization_id = $1", [org.id])).rejects.toThrow(/append-only/);
});

test("signed out callers get NOT_AUTHENTICATED", async () => {
  expect(await codeOf(db.queryAs(null, "select app_public.delete_account('x')"))).toBe("NOT_AUTHENTICATED");
});
