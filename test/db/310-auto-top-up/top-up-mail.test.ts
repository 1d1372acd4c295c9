// Who is told about auto top-up (db/functions/310-auto-top-up/top-up-mail.sql): the admins and
// owners of the organization, never its members or anyone of another organization, with the
// attempt's facts; nobody once the organization is deleted.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { twoTenants } from "../../helpers/fixtures.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const recipients = (org: string, attempt: string | null = null) =>
  db.owner.query("select email, organization_name, credits, decline_code from app_private.auto_top_up_mail($1, $2)", [org, attempt]).then((r) => r.rows);

test("admins and owners of the organization, not members, not another organization's people", async () => {
  const { a, b } = await twoTenants(db);
  const { rows } = await db.owner.query("select email from app_public.users where id = any($1) order by email", [[a.owner.userId, a.admin.userId]]);
  const got = await recipients(a.org.id);
  expect(got.map((r) => r.email)).toEqual(rows.map((r) => r.email));
  expect(got.every((r) => r.organization_name === "Alpha Org" && r.credits === null)).toBe(true);
  const emails = got.map((r) => r.email);
  const others = await db.owner.query("select email from app_public.users where id = any($1)", [[a.member.userId, b.owner.userId, b.admin.userId]]);
  for (const { email } of others.rows) expect(emails).not.toContain(email);
  // an attempt of another organization adds nothing of it
  await db.owner.query("update app_public.organizations set deleted_at = now() where id = $1", [b.org.id]);
  expect(await recipients(b.org.id)).toEqual([]);
});
