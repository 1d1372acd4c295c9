// Projects over HTTP: create, rename, soft delete and restore; limits, other tenants, bad input.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { twoTenants } from "../helpers/fixtures.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let db: TestDatabase;
let server: TestServer;
let tenants: Awaited<ReturnType<typeof twoTenants>>;
beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db);
  tenants = await twoTenants(db);
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

const CREATE = `mutation ($o: UUID!, $n: String!) { createProject(input: { project: { organizationId: $o, name: $n } }) { project { id name } } }`;
const RENAME = `mutation ($o: UUID!, $id: UUID!, $n: String!) { updateProject(input: { organizationId: $o, id: $id, patch: { name: $n } }) { project { id name } } }`;
const DELETE = `mutation ($id: UUID!) { deleteProject(input: { id: $id }) { project { id deletedAt } } }`;
const RESTORE = `mutation ($id: UUID!) { restoreProject(input: { id: $id }) { project { id deletedAt } } }`;
const COUNTER = `query ($o: UUID!) { organization(id: $o) { usageCounter { seatCount projectCount } projects { nodes { id name } } } }`;
const code = (r: { errors?: { extensions?: { code?: string } }[] }) => r.errors?.[0]?.extensions?.code;

test("create, rename, delete and restore, with the counter following and the free plan's limit", async () => {
  const { a } = tenants;
  const created = await server.graphql(CREATE, { o: a.org.id, n: "  First  " }, a.member);
  expect(created.errors).toBeUndefined();
  const id = created.data.createProject.project.id;
  expect(created.data.createProject.project.name).toBe("First");
  const renamed = await server.graphql(RENAME, { o: a.org.id, id, n: "Renamed" }, a.member);
  expect(renamed.data.updateProject.project.name).toBe("Renamed");
  await server.graphql(CREATE, { o: a.org.id, n: "Second" }, a.member);
  await server.graphql(CREATE, { o: a.org.id, n: "Third" }, a.member);
  expect(code(await server.graphql(CREATE, { o: a.org.id, n: "Fourth" }, a.member))).toBe("PROJECT_LIMIT_REACHED");
  expect((await server.graphql(COUNTER, { o: a.org.id }, a.member)).data.organization.usageCounter).toEqual({ seatCount: 3, projectCount: 3 });
  expect(code(await server.graphql(DELETE, { id }, a.member))).toBe("FORBIDDEN");
  const deleted = await server.graphql(DELETE, { id }, a.admin);
  expect(deleted.data.deleteProject.project.deletedAt).not.toBeNull();
  expect((await server.graphql(COUNTER, { o: a.org.id }, a.member)).data.organization.projects.nodes.map((p: any) => p.name)).not.toContain("Renamed");
  await server.graphql(CREATE, { o: a.org.id, n: "Fourth" }, a.member);
  expect(code(await server.graphql(RESTORE, { id }, a.admin))).toBe("PROJECT_LIMIT_REACHED");
  expect((await server.graphql(COUNTER, { o: a.org.id }, a.member)).data.organization.usageCounter.projectCount).toBe(3);
});

test("other tenants and bad input", async () => {
  const { a, b } = tenants;
  expect(code(await server.graphql(CREATE, { o: a.org.id, n: "Intruder" }, b.owner))).toBe("NOT_FOUND");
  expect(code(await server.graphql(CREATE, { o: "00000000-0000-7000-8000-000000000000", n: "Nowhere" }, b.owner))).toBe("NOT_FOUND");
  const mine = (await server.graphql(COUNTER, { o: a.org.id }, a.member)).data.organization.projects.nodes[0];
  const stolen = await server.graphql(RENAME, { o: a.org.id, id: mine.id, n: "Stolen" }, b.owner);
  expect(stolen.data?.updateProject?.project ?? null).toBeNull(); // nothing visible to update: nothing updated
  expect(code(await server.graphql(DELETE, { id: mine.id }, b.owner))).toBe("NOT_FOUND");
  expect(code(await server.graphql(RESTORE, { id: mine.id }, b.owner))).toBe("NOT_FOUND");
  expect((await server.graphql(COUNTER, { o: a.org.id }, b.owner)).data.organization).toBeNull();
  expect(code(await server.graphql(CREATE, { o: b.org.id, n: "" }, b.owner))).toBe("INVALID_NAME");
  expect(code(await server.graphql(CREATE, { o: b.org.id, n: "x".repeat(101) }, b.owner))).toBe("INVALID_NAME");
  expect((await server.graphql(CREATE, { o: "not-a-uuid", n: "X" }, b.owner)).errors?.length).toBeGreaterThan(0);
  expect((await server.graphql(COUNTER, { o: a.org.id }, a.member)).data.organization.projects.nodes.find((p: any) => p.id === mine.id).name).toBe(mine.name);
  expect((await server.graphql(COUNTER, { o: b.org.id }, b.owner)).data.organization.usageCounter.projectCount).toBe(0);
});
