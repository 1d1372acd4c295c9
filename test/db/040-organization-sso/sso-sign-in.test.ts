// sign_in_with_sso / issue_sso_sign_in_code (sso-sign-in.sql): the first SSO sign-in of a person
// in a verified domain makes their account and membership (the organization's JIT role) within
// the plan's seats; an address outside the organization's verified domains is refused; the code
// opens a session with method 'sso' that records the connection.
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

const signIn = (connectionId: string, email: string, issuer = "https://idp.example.org") =>
  db.owner.query("select app_private.sign_in_with_sso($1, $2, $3, $4, true, 'Jit Person') as id",
    [connectionId, issuer, `sub-${randomBytes(6).toString("hex")}`, email]).then((r) => r.rows[0].id as string);

test("first SSO sign-in in a verified domain: account, membership with the JIT role, a session through the connection that sees the organization", async () => {
  const { a } = await twoTenants(db);
  await db.owner.query("delete from app_public.organization_members where organization_id = $1 and role = 'member'", [a.org.id]);
  const conn = await connection(db, a.admin, a.org.id);
  const { domain } = await verifiedDomain(db, a.admin, a.org.id);
  await db.queryAs(a.admin, "select app_public.set_organization_sso($1, true, 'admin')", [a.org.id]);
  const identityId = await signIn(conn, `new.person@${domain}`);
  const userId = (await db.owner.query("select user_id from app_private.identities where id = $1", [identityId])).rows[0].user_id;
  expect((await db.owner.query("select role from app_public.organization_members where organization_id = $1 and user_id = $2", [a.org.id, userId])).rows)
    .toEqual([{ role: "admin" }]);
  const code = (await db.owner.query("select app_private.issue_sso_sign_in_code($1, $2) as code", [identityId, conn])).rows[0].code;
  const token = (await db.queryAs(null, "select (t).* from app_public.exchange_sign_in_code($1) t", [code])).rows[0];
  expect((await db.owner.query("select method, sso_connection_id from app_private.sessions where id = $1", [token.session_id])).rows[0])
    .toEqual({ method: "sso", sso_connection_id: conn });
  const seen = await db.queryAs({ userId, sessionId: token.session_id }, "select id from app_public.organizations");
  expect(seen.rows).toEqual([{ id: a.org.id }]);
  const audit = (await db.owner.query("select action from app_public.audit_events where organization_id = $1 and target_id = $2 and action = 'sso.member_provisioned'", [a.org.id, userId])).rows;
  expect(audit).toHaveLength(1);
  // a second sign-in is the same account, no second membership
  expect((await db.owner.query("select count(*)::int as n from app_public.organization_members where user_id = $1", [userId])).rows[0].n).toBe(1);
});

test("JIT beyond the plan's seats is SEAT_LIMIT_REACHED and makes no account", async () => {
  const { a } = await twoTenants(db); // Free plan: 3 members, all taken
  const conn = await connection(db, a.admin, a.org.id);
  const { domain } = await verifiedDomain(db, a.admin, a.org.id);
  const email = `one.too.many@${domain}`;
  expect(await codeOf(signIn(conn, email))).toBe("SEAT_LIMIT_REACHED");
  expect((await db.owner.query("select count(*)::int as n from app_public.users where email = $1", [email])).rows[0].n).toBe(0);
});

test("an identity from A's connection with an address outside A's verified domains gets nothing (SSO_DOMAIN_NOT_VERIFIED), even in B's verified domain", async () => {
  const { a, b } = await twoTenants(db);
  const conn = await connection(db, a.admin, a.org.id);
  await verifiedDomain(db, a.admin, a.org.id);
  const { domain: bDomain } = await verifiedDomain(db, b.admin, b.org.id);
  const pending = (await db.queryAs(a.admin, "select domain from app_public.add_sso_domain($1, $2)", [a.org.id, `pending-${randomBytes(3).toString("hex")}.test`])).rows[0].domain;
  for (const email of [`victim@${bDomain}`, `x@${pending}`, b.member.email, "no-at-sign"]) {
    expect(await codeOf(signIn(conn, email))).toBe("SSO_DOMAIN_NOT_VERIFIED");
  }
  // a token claiming another issuer than the connection's
  expect(await codeOf(signIn(conn, `x@${bDomain}`, "https://evil.example"))).toBe("SIGN_IN_FAILED");
  const made = await db.owner.query("select count(*)::int as n from app_private.identities where email = any ($1)", [[`victim@${bDomain}`, `x@${pending}`, `x@${bDomain}`]]);
  expect(made.rows[0].n).toBe(0);
  expect((await db.owner.query("select count(*)::int as n from app_public.users where email = $1", [`victim@${bDomain}`])).rows[0].n).toBe(0);
});
