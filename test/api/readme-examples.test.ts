// The README's GraphQL walkthrough must run as written: every ```graphql block of that section,
// in order, against a real server, with the token from register/authenticate in the header and
// the "<organization id>" placeholder filled from createOrganization.

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

function walkthroughBlocks(): string[] {
  const readme = readFileSync(path.join(projectRoot, "README.md"), "utf8");
  const start = readme.indexOf("## GraphQL walkthrough");
  const end = readme.indexOf("\n## ", start + 1);
  const section = readme.slice(start, end === -1 ? undefined : end);
  return [...section.matchAll(/```graphql\n([\s\S]*?)```/g)].map((m) => m[1]);
}

test("every walkthrough example runs without errors, in order", async () => {
  const blocks = walkthroughBlocks();
  expect(blocks.length).toBeGreaterThanOrEqual(8);
  let token: string | undefined;
  let organizationId: string | undefined;
  for (const block of blocks) {
    const query = organizationId ? block.replaceAll("<organization id>", organizationId) : block;
    expect(query).not.toContain("<organization id>");
    const response = await server.graphql(query, {}, token);
    expect({ query, errors: response.errors }).toEqual({ query, errors: undefined });
    const data = response.data;
    token = data.register?.jwtToken ?? data.authenticate?.jwtToken ?? token;
    organizationId = data.createOrganization?.organization?.id ?? organizationId;
  }
  expect(organizationId).toBeDefined();
});
