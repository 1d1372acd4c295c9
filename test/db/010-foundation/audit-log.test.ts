// The audit log (db/functions/010-foundation/audit-log.sql): admins and owners read their
// organization's log; it is append-only; membership changes are recorded with who made them;
// the retention job prunes each organization's entries older than its setting.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { twoTenants, createUser, createOrganization } from "../../helpers/fixtures.ts";
import { withSettings } from "../../../db/transaction.ts";

let db: TestDatabase;
let cast: Awaited<ReturnType<typeof twoTenants>>;
beforeAll(async () => {
  db = await createTestDatabase();
  cast = await twoTenants(db);
});
afterAll(() => db?.drop());

test("admins and owners read their organization's audit log; members do not", async () => {
  for (const who of [cast.a.owner, cast.a.admin]) {
    const { rows } = await db.queryAs(who, "select organization_id, action from app_public.audit_events");
    expect(rows.length).toBeGreaterThanOrEqual(3); // owner, admin and member added
    expect(new Set(rows.map((r) => r.organization_id))).toEqual(new Set([cast.a.org.id]));
  }
  const member = await db.queryAs(cast.a.member, "select * from app_public.audit_events");
  expect(member.rows).toEqual([]);
});

test("another organization cannot read or write the log", async () => {
  const seen = await db.queryAs(cast.b.owner, "select * from app_public.audit_events where organization_id = $1", [cast.a.org.id]);
  expect(seen.rows).toEqual([]);
  await expect(
    db.queryAs(cast.b.owner, "insert into app_public.audit_events (organization_id, action, target_type) values ($1, 'forged', 'x')", [cast.a.org.id]),
  ).rejects.toThrow(/permission denied/);
  await expect(db.queryAs(cast.a.owner, "delete from app_public.audit_events")).rejects.toThrow(/permission denied/);
});

test("the log is append-only even for the owner role", async () => {
  await expect(db.owner.query("update app_public.audit_events set action = 'rewritten'")).rejects.toThrow(/append-only/);
  await expect(db.owner.query("delete from app_public.audit_events")).rejects.toThrow(/append-only/);
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
