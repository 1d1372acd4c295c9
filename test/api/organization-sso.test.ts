// Organization SSO over real HTTP against real OpenID Connect issuers in process (oidc-provider):
// an admin claims a domain and verifies it by DNS (an injected resolver), sets the connection,
// requires SSO; a member's password session then sees nothing of the organization, and the same
// member signed in through the organization's issuer sees it; a new person of the domain is made
// a member just in time. docs/organization-sso.md describes it. Attacks:
// test/adversarial/organization-sso.test.ts.

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

const ORG = `query($id: UUID!) { organization(id: $id) { id ssoRequired members: organizationMembers { totalCount } } }`;

test("set up, require SSO: a password session sees nothing, the same member through SSO sees the organization; a new person joins just in time", async () => {
  const { a } = await twoTenants(db);
  await db.owner.query("delete from app_public.organization_members where organization_id = $1 and user_id = $2", [a.org.id, a.member.userId]);
  const domain = await rig.verifiedDomain(a.admin, a.org.id);
  const [issuer] = rig.issuers;
  const connected = await rig.connect(a.admin, a.org.id, issuer);
  expect(connected.errors).toBeUndefined();
  expect(connected.data.setSsoConnection).toEqual({ ssoProviderId: expect.any(String), issuer: issuer.url, clientId: issuer.clientId });

  const member = await userWithEmail(db, `dana@${domain}`);
  await db.owner.query("insert into app_public.organization_members (organization_id, user_id, role) values ($1, $2, 'member')", [a.org.id, member.userId]);
  expect((await rig.server.graphql(ORG, { id: a.org.id }, member)).data.organization).toMatchObject({ id: a.org.id, ssoRequired: false });

  const required = await rig.server.graphql(
    `mutation($o: UUID!) { setOrganizationSso(input: {organizationId: $o, required: true}) { organization { ssoRequired } } }`,
    { o: a.org.id },
    a.admin,
  );
  expect(required.errors).toBeUndefined();

  // the member's password session: nothing of the organization
  expect((await rig.server.graphql(ORG, { id: a.org.id }, member)).data.organization).toBeNull();
  expect((await rig.server.graphql(`{ organizations { totalCount } }`, {}, member)).data.organizations.totalCount).toBe(0);

  // the same member through the organization's issuer
  const sub = `sub-${randomBytes(4).toString("hex")}`;
  issuer.accounts.set(sub, { email: `dana@${domain}`, email_verified: true, name: "Dana" });
  const landed = await rig.signIn(`dana@${domain}`, sub);
  expect(landed.searchParams.get("error")).toBeNull();
  const token = (await rig.exchange(landed.searchParams.get("code")!)).data.exchangeSignInCode.jwtToken;
  const seen = (await rig.server.graphql(ORG, { id: a.org.id }, token)).data.organization;
  expect(seen).toMatchObject({ id: a.org.id, ssoRequired: true });
  expect(seen.members.totalCount).toBe(3); // owner, admin, Dana
  const session = (await db.owner.query("select method, sso_connection_id from app_private.sessions where user_id = $1 and method = 'sso'", [member.userId])).rows;
  expect(session).toEqual([{ method: "sso", sso_connection_id: connected.data.setSsoConnection.ssoProviderId }]);

  // a new person of the domain: account and membership on first sign-in (seats lifted: the
  // Free plan's 3 are taken; the seat limit itself is an attack in the adversarial file)
  await db.owner.query("update app_public.plans set max_seats = null where id = 'free'");
  const newSub = `sub-${randomBytes(4).toString("hex")}`;
  issuer.accounts.set(newSub, { email: `new.hire@${domain}`, email_verified: true, name: "New Hire" });
  const jit = await rig.signIn(`new.hire@${domain}`, newSub);
  const jitToken = (await rig.exchange(jit.searchParams.get("code")!)).data.exchangeSignInCode?.jwtToken;
  expect(jit.searchParams.get("error")).toBeNull();
  const me = await rig.server.graphql(`{ currentUser { email } organizations { nodes { id } } }`, {}, jitToken);
  expect(me.data.currentUser.email).toBe(`new.hire@${domain}`);
  expect(me.data.organizations.nodes).toEqual([{ id: a.org.id }]);
});

test("an address with no SSO organization: SSO_NOT_AVAILABLE; a domain not yet in DNS: SSO_DOMAIN_NOT_VERIFIED", async () => {
  const { b } = await twoTenants(db);
  const response = await fetch(`${rig.server.url}/auth/sso/start?email=someone%40nowhere.test`, { redirect: "manual" });
  expect(response.status).toBe(404);
  expect((await response.json()).errors[0].extensions.code).toBe("SSO_NOT_AVAILABLE");
  const added = await rig.server.graphql(
    `mutation($o: UUID!) { addSsoDomain(input: {organizationId: $o, domain: "not-published.test"}) { ssoDomain { id } } }`,
    { o: b.org.id },
    b.admin,
  );
  const id = added.data.addSsoDomain.ssoDomain.id;
  expect(codes(await rig.server.graphql(`mutation($id: UUID!) { verifySsoDomain(input: {id: $id}) { verifiedAt } }`, { id }, b.admin))).toEqual(["SSO_DOMAIN_NOT_VERIFIED"]);
  expect(codes(await rig.server.graphql(`mutation($id: UUID!) { verifySsoDomain(input: {id: $id}) { verifiedAt } }`, { id }, b.member))).toEqual(["NOT_FOUND"]);
});

test("the operations in docs/organization-sso.md are valid against the API's schema", async () => {
  const { readFileSync } = await import("node:fs");
  const path = await import("node:path");
  const { buildSchema, parse, validate } = await import("postgraphile/graphql");
  const { projectRoot } = await import("../../core/paths.ts");
  const schema = buildSchema(readFileSync(path.join(projectRoot, "schema.graphql"), "utf8"));
  const doc = readFileSync(path.join(projectRoot, "docs", "organization-sso.md"), "utf8");
  const blocks = [...doc.matchAll(/```graphql\n([\s\S]*?)```/g)].map((m) => m[1]);
  expect(blocks.length).toBe(5);
  for (const block of blocks) expect(validate(schema, parse(block)).map((e) => e.message)).toEqual([]);
});

test("setting the connection again (another issuer and secret) takes effect on the next sign-in; the JSON start carries CORS for the app", async () => {
  const { a } = await twoTenants(db);
  await db.owner.query("update app_public.plans set max_seats = null where id = 'free'");
  const domain = await rig.verifiedDomain(a.admin, a.org.id);
  const [first, second] = rig.issuers;
  await rig.connect(a.admin, a.org.id, first);
  const sub1 = `sub-${randomBytes(4).toString("hex")}`;
  first.accounts.set(sub1, { email: `one@${domain}`, email_verified: true });
  expect((await rig.signIn(`one@${domain}`, sub1)).searchParams.get("code")).not.toBeNull();
  expect((await rig.connect(a.admin, a.org.id, second)).errors).toBeUndefined();
  const sub2 = `sub-${randomBytes(4).toString("hex")}`;
  second.accounts.set(sub2, { email: `two@${domain}`, email_verified: true });
  expect((await rig.signIn(`two@${domain}`, sub2)).searchParams.get("code")).not.toBeNull();

  const response = await fetch(`${rig.server.url}/auth/sso/start?email=two%40${domain}`, {
    headers: { accept: "application/json", origin: "http://app.test:3000" },
  });
  expect(response.status).toBe(200);
  expect(response.headers.get("access-control-allow-origin")).toBe("http://app.test:3000");
  expect(new URL(((await response.json()) as { url: string }).url).origin).toBe(second.url);
});
