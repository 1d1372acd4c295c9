// Access after the relationship ends (issue 25, finding A10), over real HTTP: a removed admin's
// admin API key still read the organization and renamed it. Now the keys a member created are
// revoked when they are removed (or leave, or delete their account), and a key never acts with
// more than its creator's current role: after a demotion an admin key acts as a member key.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { addMember, createOrganization, createUser, type TestUser } from "../helpers/fixtures.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

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

const CREATE_KEY = `mutation($o: UUID!, $n: String!, $r: OrganizationRole) {
  createApiKey(input: {organizationId: $o, name: $n, role: $r}) { apiKey { id role } secret }
}`;
const RENAME = `mutation($id: UUID!, $name: String!) { updateOrganization(input: {id: $id, patch: {name: $name}}) { organization { name } } }`;
const READ = `query($id: UUID!) { organization(id: $id) { id name } apiKeys { totalCount } }`;
const REMOVE = `mutation($o: UUID!, $u: UUID!) { removeMember(input: {organizationId: $o, userId: $u}) { success } }`;
const CHANGE_ROLE = `mutation($o: UUID!, $u: UUID!, $r: OrganizationRole!) {
  changeMemberRole(input: {organizationId: $o, userId: $u, role: $r}) { clientMutationId }
}`;
const code = (response: { errors?: { extensions?: { code?: string } }[] }) => response.errors?.[0]?.extensions?.code;

async function team(label: string) {
  const owner = await createUser(db, `${label} Owner`);
  const admin = await createUser(db, `${label} Admin`);
  const org = await createOrganization(db, owner, `${label} Org`);
  await addMember(db, org.id, admin, "admin");
  const created = await server.graphql(CREATE_KEY, { o: org.id, n: "admin's key", r: "admin" }, admin);
  expect(created.errors).toBeUndefined();
  const secret = created.data.createApiKey.secret as string;
  const keyId = created.data.createApiKey.apiKey.id as string;
  // before: the key reads the organization, sees its keys, and renames it
  const read = await server.graphql(READ, { id: org.id }, secret);
  expect(read.data).toEqual({ organization: { id: org.id, name: `${label} Org` }, apiKeys: { totalCount: 1 } });
  const renamed = await server.graphql(RENAME, { id: org.id, name: "Renamed by the key" }, secret);
  expect(renamed.data.updateOrganization.organization.name).toBe("Renamed by the key");
  return { owner, admin, org, secret, keyId };
}

const orgName = async (id: string) => (await db.owner.query("select name from app_public.organizations where id = $1", [id])).rows[0].name;

test("removed: the admin's key is revoked at once and answers INVALID_TOKEN", async () => {
  const t = await team("Removal");
  const removed = await server.graphql(REMOVE, { o: t.org.id, u: t.admin.userId }, t.owner);
  expect(removed.errors).toBeUndefined();

  const read = await server.graphql(READ, { id: t.org.id }, t.secret);
  expect(read.status).toBe(401);
  expect(code(read)).toBe("INVALID_TOKEN");
  const rename = await server.graphql(RENAME, { id: t.org.id, name: "Renamed after removal" }, t.secret);
  expect(code(rename)).toBe("INVALID_TOKEN");
  expect(await orgName(t.org.id)).toBe("Renamed by the key");

  // the owner sees it revoked, by them, with the reason in the audit log
  const keys = await server.graphql(`{ apiKeys { nodes { id revokedAt } } auditEvents(first: 100) { nodes { action targetId details } } }`, {}, t.owner);
  expect(keys.errors).toBeUndefined();
  expect(keys.data.apiKeys.nodes).toEqual([{ id: t.keyId, revokedAt: expect.any(String) }]);
  const revocations = keys.data.auditEvents.nodes.filter((e: { action: string }) => e.action === "api_key.revoked");
  expect(revocations).toEqual([{ action: "api_key.revoked", targetId: t.keyId, details: expect.objectContaining({ reason: "creator_removed" }) }]);
});

test("demoted: the admin key acts as a member key (reads, cannot rename or see keys); promoted again, as admin", async () => {
  const t = await team("Demotion");
  const demoted = await server.graphql(CHANGE_ROLE, { o: t.org.id, u: t.admin.userId, r: "member" }, t.owner);
  expect(demoted.errors).toBeUndefined();

  const read = await server.graphql(READ, { id: t.org.id }, t.secret);
  expect(read.errors).toBeUndefined();
  expect(read.data).toEqual({ organization: { id: t.org.id, name: "Renamed by the key" }, apiKeys: { totalCount: 0 } });
  const rename = await server.graphql(RENAME, { id: t.org.id, name: "Renamed after demotion" }, t.secret);
  expect(rename.errors?.length).toBeGreaterThan(0);
  expect(await orgName(t.org.id)).toBe("Renamed by the key");
  // nor can it mint itself an admin key
  expect(code(await server.graphql(CREATE_KEY, { o: t.org.id, n: "escape", r: "admin" }, t.secret))).not.toBeUndefined();
  const { rows } = await db.owner.query("select count(*)::int as n from app_public.api_keys where organization_id = $1", [t.org.id]);
  expect(rows[0].n).toBe(1);

  await server.graphql(CHANGE_ROLE, { o: t.org.id, u: t.admin.userId, r: "admin" }, t.owner);
  const again = await server.graphql(RENAME, { id: t.org.id, name: "Renamed after promotion" }, t.secret);
  expect(again.data.updateOrganization.organization.name).toBe("Renamed after promotion");
});

test("account deleted: the creator's keys stop", async () => {
  const t = await team("Deletion");
  await setPassword(t.admin, "correct horse battery");
  const deleted = await server.graphql(`mutation($p: String!) { deleteAccount(input: {password: $p}) { success } }`, { p: "correct horse battery" }, t.admin);
  expect(deleted.errors).toBeUndefined();
  const read = await server.graphql(READ, { id: t.org.id }, t.secret);
  expect(code(read)).toBe("INVALID_TOKEN");
  const { rows } = await db.owner.query("select revoked_at is not null as revoked from app_public.api_keys where id = $1", [t.keyId]);
  expect(rows[0].revoked).toBe(true);
});

async function setPassword(user: TestUser, password: string) {
  await db.owner.query(
    `insert into app_private.user_secrets (user_id, password_hash) values ($1, crypt($2, gen_salt('bf', 4)))
     on conflict (user_id) do update set password_hash = excluded.password_hash`,
    [user.userId, password],
  );
}
