// schema.graphql is committed so that clients and reviewers see API changes in diffs. It must be
// exactly what the server generates from the migrated database: run `npm run schema:export`.

import { readFileSync } from "node:fs";
import path from "node:path";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { schemaToSdl } from "../../server/schema-sdl.ts";
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

test("schema.graphql matches the generated schema (run `npm run schema:export` if not)", async () => {
  const { schema } = await server.app.pgl.getSchemaResult();
  const committed = readFileSync(path.join(projectRoot, "schema.graphql"), "utf8");
  expect(schemaToSdl(schema)).toBe(committed);
});

test("the schema uses the naming docs/graphql-guide.md promises", async () => {
  const { schema } = await server.app.pgl.getSchemaResult();
  const query = schema.getQueryType()!.getFields();
  expect(Object.keys(query)).toEqual(expect.arrayContaining(["organizations", "organization", "organizationBySlug", "currentUser", "node"]));
  expect(Object.keys(query)).not.toContain("allOrganizations");
  const organization = schema.getType("Organization") as any;
  expect(Object.keys(organization.getFields())).toEqual(expect.arrayContaining(["id", "nodeId", "slug", "name"]));
  expect(Object.keys(organization.getFields())).not.toContain("rowId");
  const mutation = schema.getMutationType()!.getFields();
  expect(Object.keys(mutation)).toEqual(
    expect.arrayContaining(["register", "authenticate", "logout", "createOrganization", "updateOrganization", "deleteOrganization"]),
  );
});
