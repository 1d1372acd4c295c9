// The team mutations over HTTP: business errors reach the client as extensions.code (and
// nothing else leaks), settings errors name their path, invitations race over real concurrent
// requests, and the one-time secrets appear only in their payloads.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { createUser, twoTenants } from "../helpers/fixtures.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { createUserWithEmail, setPlan } from "../helpers/team.ts";

let db: TestDatabase;
let server: TestServer;
let cast: Awaited<ReturnType<typeof twoTenants>>;
beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db);
  cast = await twoTenants(db);
  await setPlan(db, cast.a.org.id, "enterprise");
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

const INVITE = `mutation($o: UUID!, $e: String!, $r: OrganizationRole) {
  inviteMember(input: {organizationId: $o, email: $e, role: $r}) {
    invitation { id email role status expiresAt invitedBy }
    invitationToken
  }
}`;
const ACCEPT = `mutation($t: String!) { acceptInvitation(input: {token: $t}) { membership { organizationId userId role } } }`;
const code = (r: { errors?: { extensions?: { code?: string } }[] }) => r.errors?.[0]?.extensions?.code;

test("invite → accept → invalid on reuse, with codes in extensions", async () => {
  const invitee = await createUserWithEmail(db, "zoe@example.com");
  const invited = await server.graphql(INVITE, { o: cast.a.org.id, e: "Zoe@Example.com", r: "ADMIN".toLowerCase() }, cast.a.admin);
  expect(invited.errors).toBeUndefined();
  const { invitation, invitationToken } = invited.data.inviteMember;
  expect(invitation).toMatchObject({ email: "zoe@example.com", role: "admin", status: "pending", invitedBy: cast.a.admin.userId });

  // admins list invitations; the token is not there
  const listed = await server.graphql(`{ invitations { nodes { id email status } } }`, {}, cast.a.admin);
  expect(listed.data.invitations.nodes).toContainEqual({ id: invitation.id, email: "zoe@example.com", status: "pending" });
  expect(JSON.stringify(listed)).not.toContain(invitationToken);

  const wrongUser = await server.graphql(ACCEPT, { t: invitationToken }, cast.b.member);
  expect(code(wrongUser)).toBe("INVITATION_EMAIL_MISMATCH");
  const anonymous = await server.graphql(ACCEPT, { t: invitationToken });
  expect(anonymous.errors).toBeDefined();
  expect(anonymous.data?.acceptInvitation ?? null).toBeNull();

  const ok = await server.graphql(ACCEPT, { t: invitationToken }, invitee);
  expect(ok.data.acceptInvitation.membership).toEqual({ organizationId: cast.a.org.id, userId: invitee.userId, role: "admin" });
  const again = await server.graphql(ACCEPT, { t: invitationToken }, invitee);
  expect(again.errors).toEqual([expect.objectContaining({ message: "This invitation is not valid.", extensions: { code: "INVITATION_INVALID" } })]);
});

test("codes of the other mutations reach the client", async () => {
  const { a, b } = cast;
  const cases: [string, Record<string, unknown>, any, string][] = [
    [`mutation($o: UUID!, $u: UUID!) { changeMemberRole(input: {organizationId: $o, userId: $u, role: admin}) { membership { role } } }`,
      { o: a.org.id, u: a.owner.userId }, a.admin, "FORBIDDEN"],
    [`mutation($o: UUID!) { leaveOrganization(input: {organizationId: $o}) { success } }`, { o: a.org.id }, a.owner, "LAST_OWNER"],
    [`mutation($o: UUID!, $u: UUID!) { removeMember(input: {organizationId: $o, userId: $u}) { success } }`,
      { o: a.org.id, u: a.member.userId }, b.owner, "NOT_FOUND"],
    [`mutation($o: UUID!) { changeOrganizationSlug(input: {organizationId: $o, slug: "graphql"}) { organization { slug } } }`,
      { o: a.org.id }, a.owner, "INVALID_SLUG"],
    [`mutation($o: UUID!) { changeOrganizationSlug(input: {organizationId: $o, slug: "${b.org.slug}"}) { organization { slug } } }`,
      { o: a.org.id }, a.owner, "SLUG_TAKEN"],
    [`mutation($o: UUID!) { updateOrganizationSettings(input: {organizationId: $o, patch: {branding: {primaryColor: "red"}}}) { organizationSettings { organizationId } } }`,
      { o: a.org.id }, a.admin, "INVALID_SETTINGS"],
    [`mutation($o: UUID!) { updateOrganizationSettings(input: {organizationId: $o, patch: {}}) { organizationSettings { organizationId } } }`,
      { o: a.org.id }, a.member, "FORBIDDEN"],
    [`mutation { updateUserSettings(input: {patch: {timezone: "Nowhere/Land"}}) { userSettings { timezone } } }`, {}, a.member, "INVALID_SETTINGS"],
    [`mutation($o: UUID!) { restoreOrganization(input: {id: $o}) { organization { id } } }`, { o: a.org.id }, b.owner, "NOT_FOUND"],
    [`mutation($o: UUID!) { inviteMember(input: {organizationId: $o, email: "nope"}) { clientMutationId } }`, { o: a.org.id }, a.admin, "INVALID_EMAIL"],
  ];
  for (const [query, variables, who, expected] of cases) {
    const response = await server.graphql(query, variables, who);
    expect([query, code(response)]).toEqual([query, expected]);
    expect(JSON.stringify(response.errors)).not.toMatch(/app_public|app_private|plpgsql|select /i);
  }
  const settings = await server.graphql(
    `mutation($o: UUID!) { updateOrganizationSettings(input: {organizationId: $o, patch: {features: {auditLogRetentionDays: 5000}}}) { clientMutationId } }`,
    { o: a.org.id },
    a.admin,
  );
  expect(settings.errors?.[0].message).toBe("features.auditLogRetentionDays: must be between 1 and 3650 days, got 5000");
});

test("members read typed settings through the organization", async () => {
  const response = await server.graphql(
    `query($o: UUID!) { organization(id: $o) { organizationSetting { branding { primaryColor } features { auditLogRetentionDays apiAccessEnabled } } } }`,
    { o: cast.a.org.id },
    cast.a.member,
  );
  expect(response.data.organization.organizationSetting).toEqual({
    branding: { primaryColor: "#4f46e5" },
    features: { auditLogRetentionDays: 30, apiAccessEnabled: true },
  });
  const other = await server.graphql(
    `query($o: UUID!) { organizationSetting(organizationId: $o) { organizationId } }`,
    { o: cast.a.org.id },
    cast.b.owner,
  );
  expect(other.data.organizationSetting).toBeNull();
});

test("10 concurrent inviteMember requests with 2 seats left: 2 invitations, 8 SEAT_LIMIT_REACHED", async () => {
  const owner = await createUser(db, "Http Owner");
  const created = await server.graphql(`mutation { createOrganization(input: {name: "Http Seats"}) { organization { id } } }`, {}, owner);
  const org = created.data.createOrganization.organization.id; // free plan: 3 seats, 1 used
  const responses = await Promise.all(
    Array.from({ length: 10 }, (_, i) => server.graphql(INVITE, { o: org, e: `seat-${i}@example.com` }, owner)),
  );
  const codes = responses.map((r) => code(r) ?? "ok").sort();
  expect(codes).toEqual(["SEAT_LIMIT_REACHED", "SEAT_LIMIT_REACHED", "SEAT_LIMIT_REACHED", "SEAT_LIMIT_REACHED",
    "SEAT_LIMIT_REACHED", "SEAT_LIMIT_REACHED", "SEAT_LIMIT_REACHED", "SEAT_LIMIT_REACHED", "ok", "ok"]);
});
