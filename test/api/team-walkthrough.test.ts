// The team walkthrough (docs/teams.md, section "Walkthrough") runs as written: every ```graphql block in order, as the
// actor its "# as …" line names, with <placeholders> filled from earlier answers; and the
// revoked key answers 401 INVALID_TOKEN as the text says.

import { readFileSync } from "node:fs";
import path from "node:path";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { projectRoot } from "../../core/paths.ts";

let db: TestDatabase;
let server: TestServer;
beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db);
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

test("every walkthrough block runs without errors, in order", async () => {
  const doc = readFileSync(path.join(projectRoot, "docs", "teams.md"), "utf8");
  const start = doc.indexOf("\n## Walkthrough\n");
  expect(start).toBeGreaterThan(-1);
  const end = doc.indexOf("\n## ", start + 1);
  const section = doc.slice(start, end === -1 ? undefined : end);
  const blocks = [...section.matchAll(/```graphql\n([\s\S]*?)```/g)].map((m) => m[1]);
  expect(blocks.length).toBeGreaterThanOrEqual(15);

  const tokens: Record<string, string> = {};
  const ids: Record<string, string> = {};
  for (const [who, email] of [["alice", "alice@example.com"], ["bob", "bob@example.com"]]) {
    const r = await server.graphql(
      `mutation($e: String!) { register(input: {email: $e, password: "correct horse", name: "${who}"}) { jwtToken } }`,
      { e: email },
    );
    tokens[who] = r.data.register.jwtToken;
  }
  // both opened the link of their verification mail (docs/accounts.md): invitations and API keys
  // need a verified address
  await db.owner.query("update app_public.users set email_verified_at = now() where email in ('alice@example.com', 'bob@example.com')");

  const placeholders: Record<string, string> = {};
  const outcomes: unknown[] = [];
  for (const block of blocks) {
    const as = /^# as (.+)$/m.exec(block)?.[1].trim();
    expect(as).toBeDefined();
    const token = as === "api key" ? placeholders["api key secret"] : tokens[as!];
    expect(token).toBeDefined();
    const query = block.replace(/<([^>]+)>/g, (whole, name) => placeholders[name] ?? whole);
    expect(query).not.toMatch(/<[^>]+>/);
    const response = await server.graphql(query, {}, token);
    expect({ query, errors: response.errors }).toEqual({ query, errors: undefined });
    const d = response.data;
    if (d.createOrganization) placeholders["organization id"] = d.createOrganization.organization.id;
    if (d.inviteMember) placeholders["invitation token"] = d.inviteMember.invitationToken;
    if (d.acceptInvitation) placeholders["bob's user id"] = d.acceptInvitation.membership.userId;
    if (d.createApiKey) {
      placeholders["api key id"] = d.createApiKey.apiKey.id;
      placeholders["api key secret"] = d.createApiKey.secret;
    }
    outcomes.push(d);
  }
  ids.org = placeholders["organization id"];

  // what the walkthrough claims
  const [, invited, accepted, promoted, slug, bySlug, settings, userSettings, , viaKey, , transferred, , , deleted, restored, audit] =
    outcomes as any[];
  expect(invited.inviteMember.invitation).toMatchObject({ email: "bob@example.com", role: "member", status: "pending" });
  expect(accepted.acceptInvitation.membership.role).toBe("member");
  expect(promoted.changeMemberRole.membership.role).toBe("admin");
  expect(slug.changeOrganizationSlug.organization.slug).toBe("acme");
  expect(bySlug.organizationBySlug).toMatchObject({ id: ids.org, slug: "acme", organizationSlugRedirects: { nodes: [{ slug: "acme-labs" }] } });
  expect(settings.updateOrganizationSettings.organizationSettings).toEqual({
    branding: { logoUrl: null, primaryColor: "#0a7cff", customDomain: null },
    features: { ssoEnabled: false, apiAccessEnabled: true, auditLogRetentionDays: 90 },
  });
  expect(userSettings.updateUserSettings.userSettings).toEqual({ locale: "en", timezone: "Europe/Berlin", emailNotifications: false });
  expect(viaKey.organizations.nodes).toEqual([{ id: ids.org, name: "Acme Labs", usageCounter: { apiCalls: "1" } }]);
  expect(transferred.transferOwnership.membership.role).toBe("owner");
  expect(deleted.deletedOrganizations.nodes.map((o: any) => o.id)).toEqual([ids.org]);
  expect(restored.restoreOrganization.organization.deletedAt).toBeNull();
  const actions = audit.organization.auditEvents.nodes.map((e: any) => e.action);
  expect(actions).toEqual(
    expect.arrayContaining([
      "invitation.created", "invitation.accepted", "member.role_changed", "organization.slug_changed", "settings.changed",
      "api_key.created", "api_key.revoked", "organization.ownership_transferred", "member.removed",
      "organization.deleted", "organization.restored",
    ]),
  );

  const after = await server.graphql(`{ organizations { nodes { id } } }`, {}, placeholders["api key secret"]);
  expect(after.status).toBe(401);
  expect(after.errors).toEqual([{ message: "API key is not valid, revoked or expired.", extensions: { code: "INVALID_TOKEN" } }]);
});
