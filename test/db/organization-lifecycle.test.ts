// Soft-deleted organizations: hidden from everyone (with all their rows), listed and restorable
// by owners for 30 days, hard-deleted after that by the daily job with everything in them; and
// the audit-log retention job.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { createOrganization, createUser, twoTenants } from "../helpers/fixtures.ts";
import { expectCode, invite } from "../helpers/team.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const del = (as: any, id: string) => db.queryAs(as, "select app_public.delete_organization($1)", [id]);
const restore = (as: any, id: string) => db.queryAs(as, "select * from app_public.restore_organization($1)", [id]);
const deletedList = async (as: any) =>
  (await db.queryAs(as, "select id from app_public.deleted_organizations()")).rows.map((r) => r.id);

async function cast() {
  const tenants = await twoTenants(db);
  for (const t of [tenants.a, tenants.b]) {
    await db.owner.query("update app_public.organizations set plan_id = 'enterprise' where id = $1", [t.org.id]);
  }
  return tenants;
}

test("a deleted organization disappears for everyone; its owners list and restore it", async () => {
  const { a, b } = await cast();
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

test("after 30 days restoring is refused and the daily job deletes it with every tenant row", async () => {
  const { a, b } = await cast();
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
    `select conrelid::regclass::text as t, conname from pg_constraint
     where contype = 'f' and confrelid = 'app_public.organizations'::regclass and confdeltype <> 'c'`,
  );
  expect(rows).toEqual([]);
});

test("the retention job deletes each organization's audit entries older than its setting", async () => {
  const owner = await createUser(db);
  const short = await createOrganization(db, owner, "Short Memory");
  const long = await createOrganization(db, owner, "Long Memory");
  await db.queryAs(owner, "select app_public.update_organization_settings($1, '{\"features\": {\"auditLogRetentionDays\": 7}}')", [short.id]);
  // Old entries, written as a superuser with triggers off (the audit-column trigger would stamp
  // created_at = now()).
  const root = await db.root.connect();
  try {
    await root.query("begin");
    await root.query("set local session_replication_role = replica");
    for (const org of [short.id, long.id]) {
      await root.query(
        `insert into app_public.audit_events (organization_id, action, target_type, created_at)
         select $1, 'test.old', 'test', now() - make_interval(days => d) from unnest(array[1, 6, 8, 29, 31, 400]) d`,
        [org],
      );
    }
    await root.query("commit");
  } finally {
    root.release();
  }
  const ages = async (org: string) =>
    (await db.owner.query(
      "select round(extract(epoch from now() - created_at) / 86400)::int as d from app_public.audit_events where organization_id = $1 and action = 'test.old' order by 1",
      [org],
    )).rows.map((r) => r.d);
  expect(await ages(short.id)).toEqual([1, 6, 8, 29, 31, 400]);
  const { rows } = await db.owner.query("select app_private.prune_audit_events() as n");
  expect(Number(rows[0].n)).toBeGreaterThanOrEqual(6);
  expect(await ages(short.id)).toEqual([1, 6]);
  expect(await ages(long.id)).toEqual([1, 6, 8, 29]);
  // and nobody else may delete audit entries
  await expect(db.owner.query("delete from app_public.audit_events where organization_id = $1", [long.id])).rejects.toMatchObject({
    code: "42501",
  });
});
