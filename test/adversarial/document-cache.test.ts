// Issue 25, A11: 500 unique anonymous 93 KB documents took the heap from 379 to 757 MB, and it
// stayed there: grafserv kept the last 500 parsed documents and grafast the plans of the last
// 500 operations, counted in entries whatever their size. One cache now holds both, bounded by
// entries and by an estimate of bytes, and keeps nothing of a document it refuses or does not
// keep. Measured here by the cache's own accounting (deterministic), not by the heap.

import { randomBytes } from "node:crypto";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { postGraphQL, startServer, type OpsServer } from "../helpers/operations.ts";
import { CACHE_BYTES_PER_FIELD, documentCacheFor, type DocumentCache } from "../../server/graphql-limits.ts";

const CACHE_BYTES = 30_000_000;
const CACHE_ENTRIES = 50;

let db: TestDatabase;
let server: OpsServer;
let cache: DocumentCache;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startServer(db, { limits: { documentCacheBytes: CACHE_BYTES, documentCacheEntries: CACHE_ENTRIES } });
  // one request makes the schema and its cache
  await postGraphQL(server.url, { query: "{ __typename }" });
  cache = documentCacheFor(await server.app.pgl.getSchema())!;
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

/** A valid anonymous document of ~45 KB: 400 aliased fields with long unique names (~8.5 MB estimated). */
function largeDocument(): string {
  const p = `a${randomBytes(4).toString("hex")}${"_".repeat(90)}`;
  return `{${Array.from({ length: 400 }, (_, i) => `${p}${i}:__typename`).join(" ")}}`;
}

test("200 unique large documents: the cache stays within its entries and bytes, plans included", async () => {
  expect(cache).toBeDefined();
  for (let i = 0; i < 200; i++) {
    const res = await postGraphQL(server.url, { query: largeDocument() });
    expect(res.body.errors).toBeUndefined();
    const stats = cache.stats();
    expect(stats.bytes).toBeLessThanOrEqual(CACHE_BYTES);
    expect(stats.entries).toBeLessThanOrEqual(CACHE_ENTRIES);
    // grafast's plans live inside the entries: never more planned operations than documents kept
    expect(stats.plannedOperations).toBeLessThanOrEqual(stats.entries);
  }
  // each ~45 KB document (400 fields) is estimated at > 400 × CACHE_BYTES_PER_FIELD bytes: the
  // byte bound, not the entry count, is what held
  expect(cache.stats().entries).toBeLessThanOrEqual(Math.floor(CACHE_BYTES / (400 * CACHE_BYTES_PER_FIELD)));
  expect(cache.stats().entries).toBeGreaterThan(0);
});

test("grafast's plan cache is this cache: a kept document is planned once and its plan reused", async () => {
  const query = "query Kept { __typename }";
  await postGraphQL(server.url, { query });
  const planned = cache.stats().plannedOperations;
  for (let i = 0; i < 5; i++) expect((await postGraphQL(server.url, { query })).body).toEqual({ data: { __typename: "Query" } });
  expect(cache.stats().plannedOperations).toBe(planned);
  const schema = await server.app.pgl.getSchema();
  const grafast = schema.extensions.grafast as Record<symbol, unknown>;
  const symbol = Object.getOwnPropertySymbols(grafast).find((s) => s.description === "cacheByOperation");
  expect(symbol && grafast[symbol]).toBe(cache.plans);
});

test("refused and invalid documents are not kept", async () => {
  const before = cache.stats();
  for (let i = 0; i < 20; i++) {
    const unique = randomBytes(4).toString("hex");
    // invalid (unknown field) and refused (too many fragments) documents
    await postGraphQL(server.url, { query: `{ nope${unique} }` });
    const fragments = Array.from({ length: 101 }, (_, j) => `fragment X${unique}${j} on Query{__typename}`).join(" ");
    await postGraphQL(server.url, { query: `{__typename} ${fragments}` });
  }
  expect(cache.stats()).toEqual(before);
});

test("a document larger than the whole budget is served but not kept", async () => {
  const small = await startServer(db, { limits: { documentCacheBytes: 10_000 } });
  try {
    const res = await postGraphQL(small.url, { query: largeDocument() });
    expect(res.body.errors).toBeUndefined();
    const stats = documentCacheFor(await small.app.pgl.getSchema())!.stats();
    expect(stats).toEqual({ entries: 0, bytes: 0, plannedOperations: 0 });
  } finally {
    await small.close();
  }
});
