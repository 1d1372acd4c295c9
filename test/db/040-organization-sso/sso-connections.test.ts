// set_sso_connection / sso_connection_for_email / remove_sso_connection (sso-connections.sql):
// admins set the connection; its secret is never readable by an app role; an address finds the
// connection of the organization that verified its domain.
import { randomBytes } from "node:crypto";
import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { twoTenants } from "../../helpers/fixtures.ts";
import { codeOf } from "../../helpers/sql-accounts.ts";
import { connection, verifiedDomain } from "./sso.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

test("an admin sets the connection; nobody reads its secret back; members and other organizations see nothing", async () => {
  const { a, b } = await twoTenants(db);
  const id = await connection(db, a.admin, a.org.id, "https://login.acme.test/");
  expect((await db.queryAs(a.admin, "select id, issuer, client_id from app_public.sso_connections")).rows).toEqual([{ id, issuer: "https://login.acme.test/", client_id: "client" }]);
  await expect(db.queryAs(a.admin, "select client_secret_encrypted from app_public.sso_connections")).rejects.toMatchObject({ code: "42501" });
  await expect(db.queryAs(a.owner, "select c.* from app_public.sso_connections c")).rejects.toMatchObject({ code: "42501" });
  expect((await db.queryAs(a.member, "select id from app_public.sso_connections")).rows).toEqual([]);
  expect((await db.queryAs(b.admin, "select id from app_public.sso_connections")).rows).toEqual([]);
  const details = (await db.owner.query("select details from app_public.audit_events where organization_id = $1 and action = 'sso.connection_set'", [a.org.id])).rows[0].details;
  expect(Object.keys(details).sort()).toEqual(["client_id", "issuer"]);
  expect(await codeOf(db.queryAs(a.member, "select app_hidden.set_sso_connection($1, 'https://x.test', 'c', $2)", [a.org.id, randomBytes(40)]))).toBe("FORBIDDEN");
  expect(await codeOf(db.queryAs(b.admin, "select app_hidden.set_sso_connection($1, 'https://x.test', 'c', $2)", [a.org.id, randomBytes(40)]))).toBe("NOT_FOUND");
  expect(await codeOf(db.queryAs(a.admin, "select app_hidden.set_sso_connection($1, 'ftp://x.test', 'c', $2)", [a.org.id, randomBytes(40)]))).toBe("INVALID_INPUT");
  expect(await codeOf(db.queryAs(a.admin, "select app_hidden.set_sso_connection($1, 'https://x.test', '', $2)", [a.org.id, randomBytes(40)]))).toBe("INVALID_INPUT");
  expect(await codeOf(db.queryAs(a.admin, "select app_hidden.set_sso_connection($1, 'https://x.test', 'c', $2)", [a.org.id, randomBytes(3000)]))).toBe("INVALID_INPUT");
});

test("an address finds the connection of the organization that verified its domain; removing the connection stops requiring SSO", async () => {
  const { a } = await twoTenants(db);
  const id = await connection(db, a.admin, a.org.id);
  const { domain } = await verifiedDomain(db, a.admin, a.org.id);
  const found = (await db.owner.query("select connection_id, organization_id from app_private.sso_connection_for_email($1)", [`Someone@${domain.toUpperCase()}`])).rows;
  expect(found).toEqual([{ connection_id: id, organization_id: a.org.id }]);
  expect((await db.owner.query("select * from app_private.sso_connection_for_email('x@unknown.test')")).rows).toEqual([]);
  await db.queryAs(a.admin, "select app_public.set_organization_sso($1, true)", [a.org.id]);
  await db.owner.query("update app_private.sessions set sso_connection_id = $1 where id = $2", [id, a.admin.sessionId]);
  expect(await codeOf(db.queryAs(a.member, "select app_public.remove_sso_connection($1)", [a.org.id]))).toBe("NOT_FOUND");
  expect((await db.queryAs(a.admin, "select app_public.remove_sso_connection($1) as ok", [a.org.id])).rows[0].ok).toBe(true);
  expect((await db.owner.query("select sso_required from app_public.organizations where id = $1", [a.org.id])).rows[0].sso_required).toBe(false);
});
