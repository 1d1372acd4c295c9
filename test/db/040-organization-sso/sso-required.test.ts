// set_organization_sso / break_sso_glass (sso-required.sql) and what start_request does with
// them: an organization that requires SSO is invisible to a password session of its own members,
// visible through its connection, and an SSO session of another organization's connection sees
// nothing of it. Owners break the glass, audited.
import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { twoTenants } from "../../helpers/fixtures.ts";
import { codeOf } from "../../helpers/sql-accounts.ts";
import { connection, ssoSession, verifiedDomain } from "./sso.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const visible = (actor: { userId: string; sessionId: string }, orgId: string) =>
  db.queryAs(actor, "select count(*)::int as n from app_public.organizations where id = $1", [orgId]).then((r) => r.rows[0].n);
const membersSeen = (actor: { userId: string; sessionId: string }, orgId: string) =>
  db.queryAs(actor, "select count(*)::int as n from app_public.organization_members where organization_id = $1", [orgId]).then((r) => r.rows[0].n);

test("requiring SSO needs a connection and a verified domain (SSO_NOT_CONFIGURED); only admins; never owner as JIT role", async () => {
  const { a } = await twoTenants(db);
  expect(await codeOf(db.queryAs(a.admin, "select app_public.set_organization_sso($1, true)", [a.org.id]))).toBe("SSO_NOT_CONFIGURED");
  await connection(db, a.admin, a.org.id);
  expect(await codeOf(db.queryAs(a.admin, "select app_public.set_organization_sso($1, true)", [a.org.id]))).toBe("SSO_NOT_CONFIGURED");
  await verifiedDomain(db, a.admin, a.org.id);
  expect(await codeOf(db.queryAs(a.member, "select app_public.set_organization_sso($1, true)", [a.org.id]))).toBe("FORBIDDEN");
  expect(await codeOf(db.queryAs(a.admin, "select app_public.set_organization_sso($1, true, 'owner')", [a.org.id]))).toBe("INVALID_INPUT");
  await db.queryAs(a.admin, "select app_public.set_organization_sso($1, true, 'admin')", [a.org.id]);
  expect((await db.owner.query("select sso_required, sso_jit_role from app_public.organizations where id = $1", [a.org.id])).rows[0])
    .toEqual({ sso_required: true, sso_jit_role: "admin" });
});

test("a member's password session sees nothing of an organization that requires SSO; the same member through its connection sees it", async () => {
  const { a, b } = await twoTenants(db);
  const aConnection = await connection(db, a.admin, a.org.id);
  await verifiedDomain(db, a.admin, a.org.id);
  const bConnection = await connection(db, b.admin, b.org.id);
  await verifiedDomain(db, b.admin, b.org.id);
  expect(await visible(a.member, a.org.id)).toBe(1);
  await db.queryAs(a.admin, "select app_public.set_organization_sso($1, true)", [a.org.id]);

  // password session (the fixture's) : nothing, not even the admin who turned it on
  expect(await visible(a.member, a.org.id)).toBe(0);
  expect(await membersSeen(a.member, a.org.id)).toBe(0);
  expect(await visible(a.admin, a.org.id)).toBe(0);
  expect(await codeOf(db.queryAs(a.admin, "select app_public.add_sso_domain($1, 'late.test')", [a.org.id]))).toBe("NOT_FOUND");

  // the same member through A's connection: everything again
  const viaA = await ssoSession(db, a.member.userId, aConnection);
  expect(await visible(viaA, a.org.id)).toBe(1);
  expect(await membersSeen(viaA, a.org.id)).toBe(3);

  // B requires its own SSO: a member of both, signed in through A's connection, sees nothing of B
  await db.owner.query("delete from app_public.organization_members where organization_id = $1 and user_id = $2", [b.org.id, b.member.userId]);
  await db.owner.query("insert into app_public.organization_members (organization_id, user_id, role) values ($1, $2, 'member')", [b.org.id, a.member.userId]);
  await db.queryAs(b.admin, "select app_public.set_organization_sso($1, true)", [b.org.id]);
  expect(await visible(viaA, b.org.id)).toBe(0);
  expect(await membersSeen(viaA, b.org.id)).toBe(0);
  const viaB = await ssoSession(db, a.member.userId, bConnection);
  expect(await visible(viaB, b.org.id)).toBe(1);
  expect(await visible(viaB, a.org.id)).toBe(0);

  // an organization that does not require SSO stays visible to every session
  expect(await codeOf(db.queryAs(viaA, "select app_public.set_organization_sso($1, false)", [a.org.id]))).toBe("FORBIDDEN");
  const adminViaA = await ssoSession(db, a.admin.userId, aConnection);
  await db.queryAs(adminViaA, "select app_public.set_organization_sso($1, false)", [a.org.id]);
  expect(await visible(a.member, a.org.id)).toBe(1);
  expect(await visible(viaB, a.org.id)).toBe(1);
});

test("break glass: an owner's password session sees the organization after an audited call; nobody else can", async () => {
  const { a, b } = await twoTenants(db);
  await connection(db, a.admin, a.org.id);
  await verifiedDomain(db, a.admin, a.org.id);
  await db.queryAs(a.admin, "select app_public.set_organization_sso($1, true)", [a.org.id]);
  expect(await visible(a.owner, a.org.id)).toBe(0);
  for (const who of [a.admin, a.member, b.owner]) {
    expect(await codeOf(db.queryAs(who, "select app_public.break_sso_glass($1, 'idp down')", [a.org.id]))).toBe("NOT_FOUND");
  }
  expect(await codeOf(db.queryAs(a.owner, "select app_public.break_sso_glass($1, '  ')", [a.org.id]))).toBe("INVALID_INPUT");
  expect((await db.queryAs(a.owner, "select app_public.break_sso_glass($1, 'IdP outage') as ok", [a.org.id])).rows[0].ok).toBe(true);
  expect(await visible(a.owner, a.org.id)).toBe(1);
  expect(await visible(a.admin, a.org.id)).toBe(0);
  const audit = (await db.owner.query("select target_id, details from app_public.audit_events where organization_id = $1 and action = 'sso.break_glass'", [a.org.id])).rows;
  expect(audit).toEqual([{ target_id: a.owner.userId, details: { session_id: a.owner.sessionId, reason: "IdP outage" } }]);
});
