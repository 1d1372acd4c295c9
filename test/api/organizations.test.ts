// Organizations through GraphQL: create, list, look up, rename, soft delete, and the rules.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { addMember, createUser, type TestUser } from "../helpers/fixtures.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { liftOwnershipLimit } from "../helpers/plans.ts";

let db: TestDatabase;
let server: TestServer;
let owner: TestUser;
beforeAll(async () => {
  db = await createTestDatabase();
  await liftOwnershipLimit(db);
  server = await startTestServer(db);
  owner = await createUser(db, "Olga Owner");
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

const CREATE = `mutation($name: String!) {
  createOrganization(input: {name: $name}) { organization { id nodeId slug name planId createdAt createdBy } }
}`;

async function create(name: string, as: TestUser = owner) {
  const response = await server.graphql(CREATE, { name }, as);
  expect(response.errors).toBeUndefined();
  return response.data.createOrganization.organization;
}

test("createOrganization makes the caller its owner and generates a slug", async () => {
  const org = await create("Acme Rockets, Inc.");
  expect(org).toMatchObject({ name: "Acme Rockets, Inc.", slug: "acme-rockets-inc", planId: "free", createdBy: owner.userId });
  expect(org.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-/); // UUIDv7
  expect(org.nodeId).not.toBe(org.id);

  const members = await server.graphql(
    `query($id: UUID!) { organization(id: $id) { organizationMembers { nodes { role user { id name } } } } }`,
    { id: org.id },
    owner,
  );
  expect(members.data.organization.organizationMembers.nodes).toEqual([
    { role: "owner", user: { id: owner.userId, name: "Olga Owner" } },
  ]);
});

test("slugs are made unique with a suffix and padded to three characters", async () => {
  const first = await create("Twin Peaks");
  const second = await create("Twin Peaks");
  const third = await create("twin   PEAKS!");
  expect([first.slug, second.slug, third.slug]).toEqual(["twin-peaks", "twin-peaks-2", "twin-peaks-3"]);
  expect((await create("Q")).slug).toBe("q-org");
  expect((await create("日本")).slug).toBe("org");
});

test("concurrent creations with the same name all get distinct slugs", async () => {
  const results = await Promise.all(Array.from({ length: 12 }, () => server.graphql(CREATE, { name: "Race Co" }, owner)));
  expect(results.flatMap((r) => r.errors ?? [])).toEqual([]);
  const slugs = results.map((r) => r.data.createOrganization.organization.slug);
  expect(new Set(slugs).size).toBe(12);
});

test.each([[""], ["   "], ["x".repeat(300)]])("createOrganization refuses name %j with INVALID_NAME", async (name) => {
  const before = await db.owner.query("select count(*)::int as n from app_public.organizations");
  const response = await server.graphql(CREATE, { name }, owner);
  expect(response.errors?.map((e) => e.extensions?.code)).toEqual(["INVALID_NAME"]);
  const after = await db.owner.query("select count(*)::int as n from app_public.organizations");
  expect(after.rows[0].n).toBe(before.rows[0].n);
});

test("anonymous callers cannot create organizations", async () => {
  const response = await server.graphql(CREATE, { name: "Nope" });
  expect(response.errors?.length).toBeGreaterThan(0);
  expect(JSON.stringify(response.errors)).not.toMatch(/permission denied|app_public/);
});

test("organizations lists only the caller's; lookups by id and slug work for members", async () => {
  const someoneElse = await createUser(db);
  const mine = await create("Mine Only", someoneElse);
  const list = await server.graphql(`{ organizations { totalCount nodes { id } } }`, {}, someoneElse);
  expect(list.data.organizations).toEqual({ totalCount: 1, nodes: [{ id: mine.id }] });

  const bySlug = await server.graphql(`query($slug: String!) { organizationBySlug(slug: $slug) { id } }`, { slug: mine.slug }, someoneElse);
  expect(bySlug.data.organizationBySlug).toEqual({ id: mine.id });
  const byId = await server.graphql(`query($id: UUID!) { organization(id: $id) { slug } }`, { id: mine.id }, someoneElse);
  expect(byId.data.organization).toEqual({ slug: mine.slug });
});

test("admins and owners rename; members cannot; invalid names are refused", async () => {
  const org = await create("Rename Me");
  const admin = await createUser(db);
  const member = await createUser(db);
  await addMember(db, org.id, admin, "admin");
  await addMember(db, org.id, member, "member");
  const RENAME = `mutation($id: UUID!, $name: String!) {
    updateOrganization(input: {id: $id, patch: {name: $name}}) { organization { name updatedAt } }
  }`;

  const byAdmin = await server.graphql(RENAME, { id: org.id, name: "Renamed By Admin" }, admin);
  expect(byAdmin.errors).toBeUndefined();
  expect(byAdmin.data.updateOrganization.organization.name).toBe("Renamed By Admin");

  const byMember = await server.graphql(RENAME, { id: org.id, name: "Member Was Here" }, member);
  expect(byMember.errors?.map((e) => e.extensions?.code)).toEqual(["FORBIDDEN"]);

  const empty = await server.graphql(RENAME, { id: org.id, name: "" }, owner);
  expect(empty.errors?.map((e) => e.extensions?.code)).toEqual(["INVALID_NAME"]);

  const { rows } = await db.owner.query("select name from app_public.organizations where id = $1", [org.id]);
  expect(rows[0].name).toBe("Renamed By Admin");
});

test("clients cannot write audit columns or the slug through updateOrganization", async () => {
  const response = await server.graphql(
    `mutation($id: UUID!) { updateOrganization(input: {id: $id, patch: {createdAt: "2000-01-01T00:00:00Z"}}) { organization { id } } }`,
    { id: (await create("Audit Cols")).id },
    owner,
  );
  expect(response.errors?.[0].message).toMatch(/createdAt/);
});

test("deleteOrganization: owners only; the organization then disappears from lists and lookups", async () => {
  const org = await create("Doomed");
  const admin = await createUser(db);
  await addMember(db, org.id, admin, "admin");
  const DELETE = `mutation($id: UUID!) { deleteOrganization(input: {id: $id}) { organization { id deletedAt } } }`;

  const byAdmin = await server.graphql(DELETE, { id: org.id }, admin);
  expect(byAdmin.errors?.map((e) => e.extensions?.code)).toEqual(["FORBIDDEN"]);

  const byOwner = await server.graphql(DELETE, { id: org.id }, owner);
  expect(byOwner.errors).toBeUndefined();
  expect(byOwner.data.deleteOrganization.organization.deletedAt).not.toBeNull();

  for (const who of [owner, admin]) {
    const list = await server.graphql(`{ organizations { nodes { id } } }`, {}, who);
    expect(list.data.organizations.nodes.map((o: { id: string }) => o.id)).not.toContain(org.id);
    const lookup = await server.graphql(`query($id: UUID!) { organization(id: $id) { id } }`, { id: org.id }, who);
    expect(lookup.data.organization).toBeNull();
  }
  const { rows } = await db.owner.query("select deleted_at from app_public.organizations where id = $1", [org.id]);
  expect(rows[0].deleted_at).not.toBeNull();
});

test("malformed ids are a clear GraphQL error, not a database error", async () => {
  const response = await server.graphql(`{ organization(id: "not-a-uuid") { id } }`, {}, owner);
  expect(response.errors?.length).toBeGreaterThan(0);
  expect(JSON.stringify(response.errors)).not.toMatch(/invalid input syntax|select /i);
});
