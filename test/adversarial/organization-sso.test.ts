// Attacks on organization SSO (docs/organization-sso.md), over real HTTP against real OpenID
// Connect issuers in process: a verified domain claimed by a second organization; a password
// session reading an organization that requires SSO; an SSO session of organization A's
// connection reading organization B, which requires its own; the connection's secret read back
// (GraphQL, logs, audit log, the stored column); a non-admin adding a domain or a connection;
// just-in-time membership past the seat limit; an identity from A's connection with an address
// in a domain A did not verify.

import { randomBytes } from "node:crypto";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { twoTenants } from "../helpers/fixtures.ts";
import { codes } from "../helpers/accounts.ts";
import { startSsoRig, userWithEmail, type SsoRig } from "../helpers/organization-sso.ts";

let db: TestDatabase;
let rig: SsoRig;
beforeAll(async () => {
  db = await createTestDatabase();
  rig = await startSsoRig(db);
});
afterAll(async () => {
  await rig?.close();
  await db?.drop();
});

const unique = (label: string) => `${label}-${randomBytes(4).toString("hex")}`;
const ADD_DOMAIN = `mutation($o: UUID!, $d: String!) { addSsoDomain(input: {organizationId: $o, domain: $d}) { ssoDomain { id verificationRecord } } }`;
const VERIFY = `mutation($id: UUID!) { verifySsoDomain(input: {id: $id}) { verifiedAt } }`;
const REQUIRE = `mutation($o: UUID!) { setOrganizationSso(input: {organizationId: $o, required: true}) { organization { ssoRequired } } }`;

test("a domain verified by one organization cannot be claimed or verified by a second, even with its own TXT record published", async () => {
  const { a, b } = await twoTenants(db);
  const domain = `${unique("contested")}.test`;
  const bAdded = (await rig.server.graphql(ADD_DOMAIN, { o: b.org.id, d: domain }, b.admin)).data.addSsoDomain.ssoDomain;
  const aAdded = (await rig.server.graphql(ADD_DOMAIN, { o: a.org.id, d: domain }, a.admin)).data.addSsoDomain.ssoDomain;
  // both records published; A verifies first
  rig.dns.set(`_tenantbase.${domain}`, [[aAdded.verificationRecord], [bAdded.verificationRecord]]);
  expect((await rig.server.graphql(VERIFY, { id: aAdded.id }, a.admin)).errors).toBeUndefined();
  expect(codes(await rig.server.graphql(VERIFY, { id: bAdded.id }, b.admin))).toEqual(["SSO_DOMAIN_TAKEN"]);
  expect(codes(await rig.server.graphql(ADD_DOMAIN, { o: b.org.id, d: domain.toUpperCase() }, b.owner))).toEqual(["SSO_DOMAIN_TAKEN"]);
  expect(codes(await rig.server.graphql(ADD_DOMAIN, { o: b.org.id, d: "gmail.com" }, b.owner))).toEqual(["PUBLIC_EMAIL_DOMAIN"]);
});

test("a member's password session reads nothing of an organization that requires SSO; an SSO session of A's connection reads nothing of B", async () => {
  const { a, b } = await twoTenants(db);
  for (const org of [a, b]) await db.owner.query("delete from app_public.organization_members where organization_id = $1 and user_id = $2", [org.org.id, org.member.userId]);
  const aDomain = await rig.verifiedDomain(a.admin, a.org.id);
  const bDomain = await rig.verifiedDomain(b.admin, b.org.id);
  expect((await rig.connect(a.admin, a.org.id, rig.issuers[0])).errors).toBeUndefined();
  expect((await rig.connect(b.admin, b.org.id, rig.issuers[1])).errors).toBeUndefined();
  // one person, a member of both
  const person = await userWithEmail(db, `pat@${aDomain}`);
  for (const org of [a, b]) await db.owner.query("insert into app_public.organization_members (organization_id, user_id, role) values ($1, $2, 'member')", [org.org.id, person.userId]);
  for (const org of [a, b]) expect((await rig.server.graphql(REQUIRE, { o: org.org.id }, org.admin)).errors).toBeUndefined();

  const READ = `query($a: UUID!, $b: UUID!) {
    a: organization(id: $a) { id } b: organization(id: $b) { id }
    organizations { nodes { id } } organizationMembers { totalCount } auditEvents { totalCount }
  }`;
  const password = await rig.server.graphql(READ, { a: a.org.id, b: b.org.id }, person);
  expect(password.data).toEqual({ a: null, b: null, organizations: { nodes: [] }, organizationMembers: { totalCount: 0 }, auditEvents: { totalCount: 0 } });

  const sub = unique("pat");
  rig.issuers[0].accounts.set(sub, { email: `pat@${aDomain}`, email_verified: true });
  const landed = await rig.signIn(`pat@${aDomain}`, sub);
  const viaA = (await rig.exchange(landed.searchParams.get("code")!)).data.exchangeSignInCode.jwtToken;
  const seen = (await rig.server.graphql(READ, { a: a.org.id, b: b.org.id }, viaA)).data;
  expect(seen.a).toEqual({ id: a.org.id });
  expect(seen.b).toBeNull();
  expect(seen.organizations.nodes).toEqual([{ id: a.org.id }]);
  // and B's admin (password session) cannot reach B either, nor change its SSO
  expect(codes(await rig.server.graphql(`mutation($o: UUID!) { setOrganizationSso(input: {organizationId: $o, required: false}) { organization { id } } }`, { o: b.org.id }, b.admin))).toEqual(["NOT_FOUND"]);
  void bDomain;
});

test("the connection's client secret is never readable: not in GraphQL (schema or answers), not in logs, not in the audit log, not stored in clear", async () => {
  const { a } = await twoTenants(db);
  const issuer = rig.issuers[0];
  const set = await rig.connect(a.admin, a.org.id, issuer);
  expect(JSON.stringify(set)).not.toContain(issuer.clientSecret);
  const type = await rig.server.graphql(`{ __type(name: "SsoProvider") { fields { name } } }`, {}, a.admin);
  const fields = (type.data?.__type?.fields ?? []).map((f: { name: string }) => f.name);
  expect(fields.filter((name: string) => /secret/i.test(name))).toEqual([]);
  const read = await rig.server.graphql(`query($o: UUID!) { ssoProviders { nodes { id issuer clientId } } organization(id: $o) { ssoProvider { id issuer clientId } } }`, { o: a.org.id }, a.admin);
  expect(read.errors).toBeUndefined();
  expect(read.data.ssoProviders.nodes).toHaveLength(1);
  expect(JSON.stringify(read)).not.toContain(issuer.clientSecret);
  expect(codes(await rig.server.graphql(`{ ssoProviders { nodes { clientSecretEncrypted } } }`, {}, a.admin))).not.toEqual([]);
  const stored = (await db.owner.query("select client_secret_encrypted from app_public.sso_connections where organization_id = $1", [a.org.id])).rows[0].client_secret_encrypted as Buffer;
  expect(stored.includes(Buffer.from(issuer.clientSecret))).toBe(false);
  const audit = (await db.owner.query("select details::text from app_public.audit_events where organization_id = $1", [a.org.id])).rows.map((r) => r.details).join("\n");
  expect(audit).not.toContain(issuer.clientSecret);
  // a bad secret (too long) and an SQL error leave no trace of the secret either
  const long = "s".repeat(1001);
  expect(codes(await rig.server.graphql(`mutation($o: UUID!, $s: String!) { setSsoConnection(input: {organizationId: $o, issuer: "ftp://x", clientId: "c", clientSecret: $s}) { issuer } }`, { o: a.org.id, s: long }, a.admin))).toEqual(["INVALID_INPUT"]);
  expect(codes(await rig.server.graphql(`mutation($o: UUID!, $s: String!) { setSsoConnection(input: {organizationId: $o, issuer: "ftp://x", clientId: "c", clientSecret: $s}) { issuer } }`, { o: a.org.id, s: issuer.clientSecret }, a.admin))).toEqual(["INVALID_INPUT"]);
  expect(rig.logLines.join("\n")).not.toContain(issuer.clientSecret);
  expect(rig.logLines.join("\n")).not.toContain(long);
});

test("a member cannot add a domain, verify one, set the connection or require SSO; another organization's admin gets NOT_FOUND", async () => {
  const { a, b } = await twoTenants(db);
  const issuer = rig.issuers[0];
  expect(codes(await rig.server.graphql(ADD_DOMAIN, { o: a.org.id, d: `${unique("m")}.test` }, a.member))).toEqual(["FORBIDDEN"]);
  expect(codes(await rig.connect(a.member, a.org.id, issuer))).toEqual(["FORBIDDEN"]);
  expect(codes(await rig.server.graphql(REQUIRE, { o: a.org.id }, a.member))).toEqual(["FORBIDDEN"]);
  expect(codes(await rig.server.graphql(ADD_DOMAIN, { o: a.org.id, d: `${unique("b")}.test` }, b.admin))).toEqual(["NOT_FOUND"]);
  expect(codes(await rig.connect(b.admin, a.org.id, issuer))).toEqual(["NOT_FOUND"]);
  const added = (await rig.server.graphql(ADD_DOMAIN, { o: a.org.id, d: `${unique("v")}.test` }, a.admin)).data.addSsoDomain.ssoDomain;
  expect(codes(await rig.server.graphql(VERIFY, { id: added.id }, a.member))).toEqual(["NOT_FOUND"]);
  expect(codes(await rig.server.graphql(VERIFY, { id: added.id }, b.admin))).toEqual(["NOT_FOUND"]);
  expect((await db.owner.query("select count(*)::int as n from app_public.sso_connections where organization_id = $1", [a.org.id])).rows[0].n).toBe(0);
  expect((await db.owner.query("select count(*)::int as n from app_public.sso_domains where organization_id = $1", [a.org.id])).rows[0].n).toBe(1);
});

test("just-in-time membership past the plan's seats is refused (SEAT_LIMIT_REACHED) and makes no account", async () => {
  const { a } = await twoTenants(db); // Free plan: 3 seats, all taken
  const domain = await rig.verifiedDomain(a.admin, a.org.id);
  await rig.connect(a.admin, a.org.id, rig.issuers[0]);
  const sub = unique("late");
  rig.issuers[0].accounts.set(sub, { email: `late@${domain}`, email_verified: true });
  const landed = await rig.signIn(`late@${domain}`, sub);
  expect(landed.searchParams.get("error")).toBe("SEAT_LIMIT_REACHED");
  expect(landed.searchParams.get("code")).toBeNull();
  expect((await db.owner.query("select count(*)::int as n from app_public.users where email = $1", [`late@${domain}`])).rows[0].n).toBe(0);
});

test("an identity from A's connection with an address in a domain A did not verify gets nothing: no account linked, no membership", async () => {
  const { a, b } = await twoTenants(db);
  const aDomain = await rig.verifiedDomain(a.admin, a.org.id);
  const bDomain = await rig.verifiedDomain(b.admin, b.org.id);
  await rig.connect(a.admin, a.org.id, rig.issuers[0]);
  const victim = await userWithEmail(db, `victim@${bDomain}`);
  // A's identity provider (A controls it) says the person is B's victim, verified
  const sub = unique("forged");
  rig.issuers[0].accounts.set(sub, { email: `victim@${bDomain}`, email_verified: true });
  const landed = await rig.signIn(`someone@${aDomain}`, sub);
  expect(landed.searchParams.get("error")).toBe("SSO_DOMAIN_NOT_VERIFIED");
  expect(landed.searchParams.get("code")).toBeNull();
  expect((await db.owner.query("select count(*)::int as n from app_private.identities where user_id = $1", [victim.userId])).rows[0].n).toBe(0);
  expect((await db.owner.query("select count(*)::int as n from app_public.organization_members where user_id = $1", [victim.userId])).rows[0].n).toBe(0);
  // an address of a pending (unverified) domain of A: the same
  const pending = `${unique("pending")}.test`;
  await rig.server.graphql(ADD_DOMAIN, { o: a.org.id, d: pending }, a.admin);
  const sub2 = unique("pending");
  rig.issuers[0].accounts.set(sub2, { email: `x@${pending}`, email_verified: true });
  expect((await rig.signIn(`someone@${aDomain}`, sub2)).searchParams.get("error")).toBe("SSO_DOMAIN_NOT_VERIFIED");
});

test("break glass: an owner's password session sees the organization after an audited call; an admin cannot", async () => {
  const { a } = await twoTenants(db);
  await rig.verifiedDomain(a.admin, a.org.id);
  await rig.connect(a.admin, a.org.id, rig.issuers[0]);
  await rig.server.graphql(REQUIRE, { o: a.org.id }, a.admin);
  const ORG = `query($o: UUID!) { organization(id: $o) { id } }`;
  const BREAK = `mutation($o: UUID!) { breakSsoGlass(input: {organizationId: $o, reason: "IdP outage"}) { success } }`;
  expect((await rig.server.graphql(ORG, { o: a.org.id }, a.owner)).data.organization).toBeNull();
  expect(codes(await rig.server.graphql(BREAK, { o: a.org.id }, a.admin))).toEqual(["NOT_FOUND"]);
  expect((await rig.server.graphql(BREAK, { o: a.org.id }, a.owner)).data.breakSsoGlass.success).toBe(true);
  expect((await rig.server.graphql(ORG, { o: a.org.id }, a.owner)).data.organization).toEqual({ id: a.org.id });
  expect((await rig.server.graphql(ORG, { o: a.org.id }, a.admin)).data.organization).toBeNull();
  const audit = (await db.owner.query("select target_id, details->>'reason' as reason from app_public.audit_events where organization_id = $1 and action = 'sso.break_glass'", [a.org.id])).rows;
  expect(audit).toEqual([{ target_id: a.owner.userId, reason: "IdP outage" }]);
});
