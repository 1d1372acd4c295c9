// app_public.audit_events: admins and owners read their organization's log; it is append-only.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { twoTenants } from "../helpers/fixtures.ts";

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
