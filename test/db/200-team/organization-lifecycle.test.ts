// Deleting an organization (db/functions/200-team/organization-lifecycle.sql): owners only; soft
// deleted organizations are hidden from everyone (with all their rows), listed and restorable by
// owners for 30 days, hard-deleted after that by the daily job with everything in them.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createOrganization, createUser, twoTenants } from "../../helpers/fixtures.ts";
import { expectCode, invite } from "../../helpers/team.ts";

let db: TestDatabase;
let cast: Awaited<ReturnType<typeof twoTenants>>;
beforeAll(async () => {
  db = await createTestDatabase();
  cast = await twoTenants(db);
});
afterAll(() => db?.drop());

function code(error: unknown) {
  return (error as { detail?: string }).detail;
}

const del = (as: any, id: string) => db.queryAs(as, "select app_public.delete_organization($1)", [id]);
const restore = (as: any, id: string) => db.queryAs(as, "select * from app_public.restore_organization($1)", [id]);
const deletedList = async (as: any) =>
  (await db.queryAs(as, "select id from app_public.deleted_organizations()")).rows.map((r) => r.id);

/** Two organizations on the enterprise plan (room for invitations and keys). */
async function enterpriseTenants() {
  const tenants = await twoTenants(db);
  for (const t of [tenants.a, tenants.b]) {
    await db.owner.query("update app_public.organizations set plan_id = 'enterprise' where id = $1", [t.org.id]);
  }
  return tenants;
}

test("delete_organization is for owners; admins get FORBIDDEN", async () => {
  const owner = await createUser(db);
  const org = await createOrganization(db, owner, "Short Lived");
  const admin = await createUser(db);
  await db.owner.query("insert into app_public.organization_members (organization_id, user_id, role) values ($1, $2, 'admin')", [org.id, admin.userId]);
  const attempt = await db.queryAs(admin, "select app_public.delete_organization($1)", [org.id]).catch((e) => e);
  expect(code(attempt)).toBe("FORBIDDEN");
  await db.queryAs(owner, "select app_public.delete_organization($1)", [org.id]);
  const visible = await db.queryAs(owner, "select id from app_public.organizations where id = $1", [org.id]);
  expect(visible.rows).toEqual([]);
  const audit = await db.owner.query("select action from app_public.audit_events where organization_id = $1 and action = 'organization.deleted'", [org.id]);
  expect(audit.rowCount).toBe(1);
});

test("delete_organization with a null id is NOT_FOUND and changes nothing", async () => {
  await expect(db.queryAs(cast.a.owner, "select app_public.delete_organization(null)")).rejects.toMatchObject({ detail: "NOT_FOUND" });
  const { rows } = await db.owner.query("select count(*)::int as n from app_public.organizations where deleted_at is not null and id = $1", [cast.a.org.id]);
  expect(rows[0].n).toBe(0);
});

test("a deleted organization disappears for everyone; its owners list and restore it", async () => {
  const { a, b } = await enterpriseTenants();
  await db.queryAs(a.admin, "select app_public.create_api_key($1, 'k')", [a.org.id]);
  await invite(db, a.admin, a.org.id, "someone@example.com");
  await del(a.owner, a.org.id);

  for (const who of [a.owner, a.admin, a.member]) {
    expect((await db.queryAs(who, "select id from app_public.organizations where id = $1", [a.org.id])).rows).toEqual([]);
    expect((await db.queryAs(who, "select id from app_public.organization_by_slug($1)", [a.org.slug])).rows[0].id).toBeNull();
    for (const table of ["organization_members", "organization_settings", "invitations", "api_keys", "audit_events", "usage_counters"]) {
      const { rows } = await db.queryAs(who, `select 1 from app_public.${table} where organization_id = $1`, [a.org.id]);
      expect([table, rows.length]).toEqual([table, 0]);
    }
  }
  expect(await deletedList(a.owner)).toEqual([a.org.id]);
  expect(await deletedList(a.admin)).toEqual([]);
  expect(await deletedList(b.owner)).toEqual([]);

  await expectCode(restore(a.admin, a.org.id), "FORBIDDEN");
  await expectCode(restore(a.member, a.org.id), "FORBIDDEN");
  await expectCode(restore(b.owner, a.org.id), "NOT_FOUND");
  const { rows } = await restore(a.owner, a.org.id);
  expect(rows[0]).toMatchObject({ id: a.org.id, deleted_at: null });
  expect((await db.queryAs(a.member, "select id from app_public.organizations where id = $1", [a.org.id])).rows).toHaveLength(1);
  expect(await deletedList(a.owner)).toEqual([]);
  // restoring a live organization changes nothing
  expect((await restore(a.owner, a.org.id)).rows[0].deleted_at).toBeNull();

  const { rows: audit } = await db.owner.query(
    "select action, created_by from app_public.audit_events where organization_id = $1 and action like 'organization.%' order by created_at",
    [a.org.id],
  );
  expect(audit).toEqual([
    { action: "organization.deleted", created_by: a.owner.userId },
    { action: "organization.restored", created_by: a.owner.userId },
  ]);
});

test("restorable free organizations count toward the free limit; restoring past it is ORGANIZATION_LIMIT_REACHED", async () => {
  const owner = await createUser(db);
  const paid = await createOrganization(db, owner, "Paid Then");
  await db.owner.query("update app_public.organizations set plan_id = 'pro' where id = $1", [paid.id]);
  await del(owner, paid.id); // deleted while on a paid plan: it did not count
  const free = [await createOrganization(db, owner, "Free A"), await createOrganization(db, owner, "Free B")];
  await del(owner, free[0].id); // deleted and restorable: it still counts
  await createOrganization(db, owner, "Free C");
  await expectCode(db.queryAs(owner, "select app_public.create_organization('Free D')"), "ORGANIZATION_LIMIT_REACHED");
  // restoring the counted one changes nothing in the count: allowed
  await restore(owner, free[0].id);
  // the paid one lapsed to free while deleted: restoring it would make a 4th
  await db.owner.query("update app_public.organizations set plan_id = 'free' where id = $1", [paid.id]);
  await expectCode(restore(owner, paid.id), "ORGANIZATION_LIMIT_REACHED");
  const { rows } = await db.owner.query("select deleted_at from app_public.organizations where id = $1", [paid.id]);
  expect(rows[0].deleted_at).not.toBeNull();
});

test("after 30 days restoring is refused and the daily job deletes it with every tenant row", async () => {
  const { a, b } = await enterpriseTenants();
  await db.queryAs(a.admin, "select app_public.create_api_key($1, 'k')", [a.org.id]);
  await invite(db, a.admin, a.org.id, "later@example.com");
  await db.queryAs(a.admin, "select app_public.change_organization_slug($1, 'alpha-hard')", [a.org.id]);
  await del(a.owner, a.org.id);
  await db.owner.query("update app_public.organizations set deleted_at = now() - interval '30 days 1 minute' where id = $1", [a.org.id]);
  await expectCode(restore(a.owner, a.org.id), "RESTORE_WINDOW_PASSED");
  expect(await deletedList(a.owner)).toEqual([]);

  // also one deleted recently: it stays
  await del(b.owner, b.org.id);
  const { rows } = await db.owner.query("select app_private.hard_delete_organizations() as n");
  expect(rows[0].n).toBe(1);

  // nothing of A is left in any table that has an organization_id column
  const { rows: tables } = await db.owner.query(
    `select format('%I.%I', c.table_schema, c.table_name) as t from information_schema.columns c
     join information_schema.tables t on t.table_schema = c.table_schema and t.table_name = c.table_name and t.table_type = 'BASE TABLE'
     where c.column_name = 'organization_id' and c.table_schema in ('app_public', 'app_private')`,
  );
  expect(tables.length).toBeGreaterThan(8);
  for (const { t } of tables) {
    const { rows: left } = await db.owner.query(`select count(*)::int as n from ${t} where organization_id = $1`, [a.org.id]);
    expect([t, left[0].n]).toEqual([t, 0]);
  }
  expect((await db.owner.query("select 1 from app_public.organizations where id = $1", [a.org.id])).rows).toEqual([]);
  // the users themselves remain
  expect((await db.owner.query("select 1 from app_public.users where id = $1", [a.owner.userId])).rows).toHaveLength(1);
  // B is still restorable
  await restore(b.owner, b.org.id);
});

test("every foreign key to organizations cascades, so the hard delete reaches every tenant table", async () => {
  const { rows } = await db.owner.query(
    `select conrelid::regclass::text as t, conname, confdeltype::text as on_delete from pg_constraint
     where contype = 'f' and confrelid = 'app_public.organizations'::regclass and confdeltype <> 'c'`,
  );
  // The one exception: a session's SSO break glass names an organization; the owner's session
  // outlives the organization (set null), it holds none of its rows.
  expect(rows).toEqual([{ t: "app_private.sessions", conname: "sessions_sso_break_glass_organization_id_fkey", on_delete: "n" }]);
});
