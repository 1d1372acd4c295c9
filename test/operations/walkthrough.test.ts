// The GraphQL walkthrough (docs/graphql-guide.md, section "Walkthrough") is these .graphql files
// (test/operations/NN-*.graphql): each ```graphql block of that section must be the text of the
// next file, and every operation of every file runs, in order, without errors against a real
// server, with the token from Register/Authenticate and the ids (organizationId, projectId,
// generationId) from earlier answers as variables. Every other ```graphql block in README.md and
// docs/*.md validates against schema.graphql, except docs/extending.md's: the tutorial adds a
// table of its own, which schema.graphql does not have (CI runs that tutorial on a checkout).
// The same journey runs as trusted documents in walkthrough-trusted.test.ts.

import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { buildSchema, Kind, parse, validate, type OperationDefinitionNode } from "postgraphile/graphql";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { projectRoot } from "../../core/paths.ts";
import { postGraphQL, runWalkthrough } from "../helpers/walkthrough.ts";

const folder = path.join(projectRoot, "test", "operations");
const files = readdirSync(folder)
  .filter((name) => name.endsWith(".graphql"))
  .sort();
const guide = readFileSync(path.join(projectRoot, "docs", "graphql-guide.md"), "utf8");
/** README.md and docs/*.md, but the tutorial (its schema is not this one). */
const pages = ["README.md", ...readdirSync(path.join(projectRoot, "docs")).filter((name) => name.endsWith(".md") && name !== "extending.md").sort().map((name) => `docs/${name}`)];
const schema = buildSchema(readFileSync(path.join(projectRoot, "schema.graphql"), "utf8"));

function section(title: string): string {
  const start = guide.indexOf(`\n## ${title}\n`);
  expect(start).toBeGreaterThan(-1);
  const end = guide.indexOf("\n## ", start + 1);
  return guide.slice(start, end === -1 ? undefined : end);
}

const graphqlBlocks = (text: string) => [...text.matchAll(/```graphql\n([\s\S]*?)```/g)].map((m) => m[1]);

test("the walkthrough's code blocks are the operation files, in order", () => {
  expect(files.length).toBeGreaterThanOrEqual(10);
  const blocks = graphqlBlocks(section("Walkthrough"));
  expect(blocks).toEqual(files.map((name) => readFileSync(path.join(folder, name), "utf8")));
});

test("every ```graphql block in README.md and docs/*.md and every operation file is valid against schema.graphql", () => {
  const documents = [
    ...pages.flatMap((page) =>
      graphqlBlocks(readFileSync(path.join(projectRoot, page), "utf8")).map((text, index) => ({ where: `${page} block ${index + 1}`, text })),
    ),
    ...files.map((name) => ({ where: name, text: readFileSync(path.join(folder, name), "utf8") })),
  ];
  expect(documents.length).toBeGreaterThan(20);
  const problems = documents.flatMap(({ where, text }) => validate(schema, parse(text)).map((error) => `${where}: ${error.message}`));
  expect(problems).toEqual([]);
  // a block with several operations needs names, so a client can pick one (operationName)
  for (const { where, text } of documents) {
    const operations = parse(text).definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION) as OperationDefinitionNode[];
    if (operations.length > 1) expect({ where, unnamed: operations.filter((o) => !o.name).length }).toEqual({ where, unnamed: 0 });
  }
});

describe("against a server", () => {
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

  test("every operation of every file runs without errors, in order", async () => {
    const { token } = await runWalkthrough(({ text, operationName, variables, token }) => postGraphQL(server.url, { query: text, operationName, variables }, token));
    // logged out: the token no longer works
    const after = await server.graphql(`{ currentUser { id } }`, {}, token);
    expect(after.status).toBe(401);
  });
});
