// The client journey of test/operations (walkthrough.test.ts) as trusted documents: the manifest
// is built by `npm run documents:manifest` from the same .graphql files, the server runs in
// `only` mode, and every operation is sent by its id alone — in each of the three forms clients
// use (graphql-codegen's documentId, Apollo's extensions.persistedQuery.sha256Hash, Relay's id).
// Text is refused on that server (PERSISTED_QUERIES_ONLY).

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { buildSchema, getOperationAST, parse } from "postgraphile/graphql";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { OPERATIONS_FOLDER, postGraphQL, runWalkthrough, walkthroughFiles } from "../helpers/walkthrough.ts";
import { buildManifest } from "../../scripts/documents-manifest-lib.ts";
import { projectRoot } from "../../core/paths.ts";

const folder = mkdtempSync(path.join(tmpdir(), "tb-trusted-"));
const manifestFile = path.join(folder, "persisted-documents.json");
let manifest: Record<string, string>;
/** operation name -> manifest id */
const idOf = new Map<string, string>();

let db: TestDatabase;
let server: TestServer;

beforeAll(async () => {
  execFileSync(process.execPath, ["scripts/documents-manifest.ts", "test/operations/*.graphql", "--out", manifestFile], { cwd: projectRoot, stdio: "pipe" });
  manifest = JSON.parse(readFileSync(manifestFile, "utf8"));
  for (const [id, text] of Object.entries(manifest)) idOf.set(getOperationAST(parse(text))!.name!.value, id);
  db = await createTestDatabase();
  server = await startTestServer(db, { trustedDocuments: { mode: "only", manifests: [manifestFile], allowTextFor: [] } });
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
  rmSync(folder, { recursive: true, force: true });
});

test("the command writes one document per operation, keyed by the sha256 of codegen's printing, valid against schema.graphql", () => {
  const files = walkthroughFiles().map((name) => ({ name, text: readFileSync(path.join(OPERATIONS_FOLDER, name), "utf8") }));
  const schema = buildSchema(readFileSync(path.join(projectRoot, "schema.graphql"), "utf8"));
  expect(manifest).toEqual(buildManifest(files, { schema }));
  expect(Object.keys(manifest).length).toBe(idOf.size);
  expect(idOf.size).toBeGreaterThanOrEqual(10);
  for (const id of Object.keys(manifest)) expect(id).toMatch(/^sha256:[0-9a-f]{64}$/);
  // Each entry is one operation, printed on one line with collapsed whitespace (as codegen does).
  const register = manifest[idOf.get("Register")!];
  expect(register).not.toMatch(/\n|  /);
  expect(register.startsWith("mutation Register")).toBe(true);
});

test("every operation of the journey runs by id alone, in order, against a server that takes ids only", async () => {
  const forms = ["documentId", "apollo", "relay"] as const;
  let sent = 0;
  const { ran, token } = await runWalkthrough(({ operationName, variables, token }) => {
    const id = idOf.get(operationName)!;
    const hex = id.slice("sha256:".length);
    const form = forms[sent++ % forms.length];
    const body =
      form === "documentId"
        ? { documentId: id, operationName, variables }
        : form === "apollo"
          ? { extensions: { persistedQuery: { version: 1, sha256Hash: hex } }, operationName, variables }
          : { id: hex, operationName, variables };
    return postGraphQL(server.url, body, token);
  });
  expect(ran.length).toBe(idOf.size);
  // logged out by the journey's last step: the token no longer works
  const after = await postGraphQL(server.url, { documentId: idOf.get("WhoAmI")! }, token);
  expect(after.status).toBe(401);
});

test("the same server refuses the journey's own text", async () => {
  const text = readFileSync(path.join(OPERATIONS_FOLDER, walkthroughFiles()[0]), "utf8");
  const refused = await postGraphQL(server.url, { query: text });
  expect(refused.status).toBe(400);
  expect(refused.body.errors?.map((e) => e.extensions?.code)).toEqual(["PERSISTED_QUERIES_ONLY"]);
  expect(refused.body.data).toBeUndefined();
});
