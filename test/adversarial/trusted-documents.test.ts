// Trusted documents in `only` mode (issue 24): an attacker cannot run a text of their own, cannot
// guess or register an id, and a huge or malformed id is refused with a code (never HTTP 500).
// What runs by id still passes every limit and lives in the same bounded document cache as text.
// Over HTTP and over the websocket (a subscription by id). Before this, the server ran any text.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import path from "node:path";
import { parse } from "postgraphile/graphql";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { createOrganization, createUser, type TestOrganization, type TestUser } from "../helpers/fixtures.ts";
import { startTestServer, tokenFor, type TestServer } from "../helpers/server.ts";
import { createApiKey } from "../helpers/team.ts";
import { connect, type RealtimeClient } from "../helpers/realtime.ts";
import { postGraphQL } from "../helpers/walkthrough.ts";
import { printTrustedDocument, sha256Hex } from "../../scripts/documents-manifest-lib.ts";
import { documentCacheFor } from "../../server/graphql-limits.ts";
import { documentsFromManifests } from "../../server/trusted-documents.ts";

const DOCUMENTS = {
  me: "query Me { currentUser { id } }",
  credits: "subscription Credits($org: UUID!) { creditAccountUpdated(organizationId: $org) { initial organizationId } }",
  // an operator's mistake: a document the limits refuse (maxDepth is 4 on this server)
  deep: "query Deep { currentUser { organizationMembers { nodes { organization { name } } } } }",
};
const texts = Object.fromEntries(Object.entries(DOCUMENTS).map(([key, text]) => [key, printTrustedDocument(parse(text))])) as Record<keyof typeof DOCUMENTS, string>;
const ids = Object.fromEntries(Object.entries(texts).map(([key, text]) => [key, `sha256:${sha256Hex(text)}`])) as Record<keyof typeof DOCUMENTS, string>;

const folder = mkdtempSync(path.join(tmpdir(), "tb-trusted-adv-"));
const manifestFile = path.join(folder, "persisted-documents.json");
writeFileSync(manifestFile, JSON.stringify(Object.fromEntries(Object.keys(texts).map((key) => [ids[key as keyof typeof ids], texts[key as keyof typeof texts]]))));

let db: TestDatabase;
let server: TestServer;
let user: TestUser;
let org: TestOrganization;
let apiKey: string;
const clients: RealtimeClient[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  // API keys (a backend integration) may still send text: TRUSTED_DOCUMENTS_ALLOW_TEXT=api_key
  server = await startTestServer(db, {
    trustedDocuments: { mode: "only", manifests: [manifestFile], allowTextFor: ["api_key"] },
    limits: { maxDepth: 4 },
  });
  user = await createUser(db, "Trusted");
  org = await createOrganization(db, user, "Trusted Org");
  apiKey = (await createApiKey(db, user, org.id)).secret;
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.dispose()));
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
  rmSync(folder, { recursive: true, force: true });
});

const codes = (body: { errors?: { extensions?: { code?: string } }[] }) => body.errors?.map((e) => e.extensions?.code);

test("text is refused for anonymous callers and users, with a code and no data", async () => {
  for (const token of [undefined, tokenFor(user)]) {
    for (const query of ["{ __typename }", DOCUMENTS.me, texts.me, ""]) {
      const r = await postGraphQL(server.url, { query }, token);
      expect({ query, status: r.status, codes: codes(r.body), data: r.body.data }).toEqual({ query, status: 400, codes: ["PERSISTED_QUERIES_ONLY"], data: undefined });
    }
  }
});

test("a document id runs; the allow-listed caller (an API key) may still send text", async () => {
  const byId = await postGraphQL(server.url, { documentId: ids.me }, tokenFor(user));
  expect(byId).toEqual({ status: 200, body: { data: { currentUser: { id: user.userId } } } });
  const text = await postGraphQL(server.url, { query: "{ __typename }" }, apiKey);
  expect(text).toEqual({ status: 200, body: { data: { __typename: "Query" } } });
});

test("guessed ids, and the hash of the attacker's own document sent with it (Apollo's registration), are not found", async () => {
  const own = "query Mine { currentUser { id email } }";
  const guesses = [
    ...Array.from({ length: 20 }, () => randomBytes(32).toString("hex")),
    sha256Hex(own),
    `sha256:${sha256Hex(printTrustedDocument(parse(own)))}`,
    ids.me.toUpperCase(),
    "sha256:",
    "__proto__",
    "constructor",
    "toString",
    "hasOwnProperty",
  ];
  for (const guess of guesses) {
    const r = await postGraphQL(server.url, { documentId: guess, query: own });
    expect({ guess, status: r.status, codes: codes(r.body) }).toEqual({ guess, status: 400, codes: ["PERSISTED_QUERY_NOT_FOUND"] });
  }
  const apollo = await postGraphQL(server.url, { query: own, extensions: { persistedQuery: { version: 1, sha256Hash: sha256Hex(own) } } });
  expect(codes(apollo.body)).toEqual(["PERSISTED_QUERY_NOT_FOUND"]);
  // nothing was registered: the same hash alone is still unknown
  const again = await postGraphQL(server.url, { extensions: { persistedQuery: { version: 1, sha256Hash: sha256Hex(own) } } });
  expect(codes(again.body)).toEqual(["PERSISTED_QUERY_NOT_FOUND"]);
});

test("huge and malformed ids are refused cleanly (400 with a code), never a 500", async () => {
  const malformed: unknown[] = ["a".repeat(90_000), "f".repeat(129), "../../etc/passwd", "id with spaces", "é", 123, true, {}, [], { toString: "x" }];
  for (const documentId of malformed) {
    for (const body of [{ documentId }, { id: documentId }, { extensions: { persistedQuery: { version: 1, sha256Hash: documentId } } }]) {
      const r = await postGraphQL(server.url, body);
      const shown = JSON.stringify(body).slice(0, 80);
      expect({ shown, status: r.status, codes: codes(r.body) }).toEqual({ shown, status: 400, codes: ["INVALID_DOCUMENT_ID"] });
    }
  }
  // past the body limit: the body check answers first
  const tooLarge = await postGraphQL(server.url, { documentId: "a".repeat(200_000) });
  expect({ status: tooLarge.status, codes: codes(tooLarge.body) }).toEqual({ status: 413, codes: ["REQUEST_TOO_LARGE"] });
});

test("a trusted document still passes every limit, and shares the bounded document cache with text", async () => {
  const deep = await postGraphQL(server.url, { documentId: ids.deep }, apiKey);
  expect({ codes: codes(deep.body), data: deep.body.data }).toEqual({ codes: ["QUERY_TOO_DEEP"], data: undefined });
  // the same answer as its text gets from a caller allowed to send text
  const asText = await postGraphQL(server.url, { query: texts.deep }, apiKey);
  expect(asText).toEqual(deep);
  const cache = documentCacheFor(await server.app.pgl.getSchema())!;
  expect(cache.get(texts.deep)).toBeUndefined(); // refused documents are not kept
  await postGraphQL(server.url, { documentId: ids.me }, tokenFor(user));
  expect(cache.get(texts.me)).toBeDefined(); // kept by its text, as the same text sent by an allowed caller would be
});

function subscribeRaw(client: RealtimeClient, payload: Record<string, unknown>) {
  const messages: any[] = [];
  let error: any;
  client.client.subscribe(payload as any, {
    next: (message) => void messages.push(message),
    error: (e) => void (error = e),
    complete: () => {},
  });
  return {
    messages,
    error: () => error,
    async until(condition: () => boolean) {
      for (let waited = 0; !condition(); waited += 20) {
        if (waited > 10_000) throw new Error(`timed out: ${JSON.stringify({ messages, error })}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
  };
}

test("over the websocket: a subscription by id runs, a text subscription is refused with its code", async () => {
  const c = connect(server.url, user);
  clients.push(c);
  // graphql-ws requires a `query` string: clients send "" with the id
  const byId = subscribeRaw(c, { query: "", documentId: ids.credits, variables: { org: org.id } });
  await byId.until(() => byId.messages.length > 0);
  expect(byId.messages[0]).toEqual({ data: { creditAccountUpdated: { initial: true, organizationId: org.id } } });
  const text = subscribeRaw(c, { query: DOCUMENTS.credits, variables: { org: org.id } });
  await text.until(() => text.error() !== undefined);
  expect(text.error().map((e: any) => e.extensions?.code)).toEqual(["PERSISTED_QUERIES_ONLY"]);
  const unknown = subscribeRaw(c, { query: "", extensions: { persistedQuery: { version: 1, sha256Hash: "0".repeat(64) } }, variables: { org: org.id } });
  await unknown.until(() => unknown.error() !== undefined);
  expect(unknown.error().map((e: any) => e.extensions?.code)).toEqual(["PERSISTED_QUERY_NOT_FOUND"]);
  expect(text.messages).toEqual([]);
});

test("a manifest whose id is not the sha256 of its text is refused at start-up", () => {
  expect(() => documentsFromManifests([{ name: "m.json", content: { [ids.me]: texts.me.replace("id", "id email") } }])).toThrow(/not the sha256 of its document/);
  expect(() => documentsFromManifests([{ name: "m.json", content: { [ids.me]: texts.me, [ids.me.slice(7)]: texts.me } }])).not.toThrow();
  expect(() => documentsFromManifests([{ name: "m.json", content: [texts.me] }])).toThrow(/JSON object/);
  expect(() => documentsFromManifests([{ name: "m.json", content: { "sha256:abc": texts.me } }])).toThrow(/not a sha256 hash/);
});
