// Issue 25, A1: an anonymous linear fragment chain `query{...F0} fragment F0 on Query{...F1} …`
// (1,000–2,500 fragments, unique text each time) blocked the event loop in grafast's planning,
// which copies its visited-fragment set at every spread (n² for a chain of n: 2,000 fragments
// ~0.8 s), and on a fresh process chains of 2,000+ overflowed the stack of the limits' own
// measurement: HTTP 500 "Unknown error occurred". The document is now checked as text before it
// is parsed, validated or planned: bytes, fragments, spreads, and the nesting of fragments.

import { randomBytes } from "node:crypto";
import { getIntrospectionQuery } from "postgraphile/graphql";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { createOrganization, createUser } from "../helpers/fixtures.ts";
import { tokenFor } from "../helpers/server.ts";
import { postGraphQL, startServer, type OpsServer } from "../helpers/operations.ts";
import { documentCacheFor } from "../../server/graphql-limits.ts";
import { expectOtherTenantServed, measureOtherTenantServed } from "./other-tenants.ts";

let db: TestDatabase;
let server: OpsServer; // default limits
let roomy: OpsServer; // 1 MB documents allowed: the fragment limits alone stand in the way
let deep: OpsServer; // many fragments allowed too: only the nesting stands in the way

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startServer(db);
  roomy = await startServer(db, { limits: { maxBodyBytes: 1_000_000, maxDocumentBytes: 1_000_000 } });
  deep = await startServer(db, { limits: { maxBodyBytes: 1_000_000, maxDocumentBytes: 1_000_000, maxFragments: 10_000, maxFragmentSpreads: 10_000 } });
});
afterAll(async () => {
  await Promise.all([server?.close(), roomy?.close(), deep?.close()]);
  await db?.drop();
});

/** `query{...F0} fragment F0 on Query{...F1} … fragment Fn on Query{__typename}`, unique names: n+1 fragments nested n+1 deep. */
function chain(n: number): string {
  const p = `F${randomBytes(3).toString("hex")}`; // fixed length: names stay unique
  const fragments: string[] = [];
  for (let i = 0; i < n; i++) fragments.push(`fragment ${p}${i} on Query{...${p}${i + 1}}`);
  fragments.push(`fragment ${p}${n} on Query{__typename}`);
  return `query{...${p}0} ${fragments.join(" ")}`;
}

function codes(body: any): string[] {
  return (body.errors ?? []).map((e: any) => e.extensions?.code);
}

async function plannedOperations(target: OpsServer): Promise<number> {
  const cache = documentCacheFor(await target.app.pgl.getSchema());
  return cache?.stats().plannedOperations ?? 0;
}

test("the chains of the finding are refused with a code, never HTTP 500, and never planned", async () => {
  const before = await plannedOperations(server);
  for (const [n, code] of [
    [1000, "TOO_MANY_FRAGMENTS"],
    [2000, "DOCUMENT_TOO_LARGE"],
    [2500, "REQUEST_TOO_LARGE"], // ~112 KB: past the body limit (HTTP 413)
  ] as const) {
    const res = await postGraphQL(server.url, { query: chain(n) });
    expect(res.status).toBeLessThan(500);
    expect(res.body.data).toBeUndefined();
    expect(codes(res.body)).toEqual([code]);
  }
  expect(await plannedOperations(server)).toBe(before);
});

test("each bound holds alone: fragments, nesting, spreads", async () => {
  // 2,000 fragments in a document the byte limit would let through
  let res = await postGraphQL(roomy.url, { query: chain(2000) });
  expect(res.status).toBeLessThan(500);
  expect(codes(res.body)).toEqual(["TOO_MANY_FRAGMENTS"]);
  // 2,500 fragments allowed, nested 2,501 deep: the 500 of the finding (a stack overflow)
  res = await postGraphQL(deep.url, { query: chain(2500) });
  expect(res.status).toBeLessThan(500);
  expect(codes(res.body)).toEqual(["FRAGMENT_NESTING_TOO_DEEP"]);
  // one fragment spread 501 times
  const spreads = Array.from({ length: 501 }, () => "...S").join(" ");
  res = await postGraphQL(server.url, { query: `query{${spreads}} fragment S on Query{__typename}` });
  expect(codes(res.body)).toEqual(["TOO_MANY_FRAGMENT_SPREADS"]);
  // more bytes than the document limit, whatever they hold (here a comment)
  res = await postGraphQL(server.url, { query: `# ${"x".repeat(50_000)}\n{__typename}` });
  expect(codes(res.body)).toEqual(["DOCUMENT_TOO_LARGE"]);
});

test("brackets nested past what the parser can take are QUERY_TOO_DEEP, not a stack overflow", async () => {
  for (const query of [
    `{${"a{".repeat(5000)}b${"}".repeat(5000)}}`,
    `{__typename(x:${"[".repeat(10_000)}${"]".repeat(10_000)})}`,
    `{__typename(x:${"{a:".repeat(5000)}1${"}".repeat(5000)})}`,
  ]) {
    const res = await postGraphQL(server.url, { query });
    expect(res.status).toBeLessThan(500);
    expect(codes(res.body)).toEqual(["QUERY_TOO_DEEP"]);
  }
});

test("what graphql-js validates in quadratic time is bounded too: fields written, variables", async () => {
  let res = await postGraphQL(server.url, { query: `{${" __typename".repeat(1001)}}` });
  expect(codes(res.body)).toEqual(["QUERY_TOO_COMPLEX"]);
  const variables = Array.from({ length: 101 }, (_, i) => `$v${i}: Int`).join(", ");
  res = await postGraphQL(server.url, { query: `query Q(${variables}) { __typename }` });
  expect(codes(res.body)).toEqual(["TOO_MANY_VARIABLES"]);
});

test("within the limits, chains and GraphiQL's introspection query still work", async () => {
  // 20 fragments nested 20 deep, the default limit
  let res = await postGraphQL(server.url, { query: chain(19) });
  expect(res.body).toEqual({ data: { __typename: "Query" } });
  res = await postGraphQL(server.url, { query: chain(20) });
  expect(codes(res.body)).toEqual(["FRAGMENT_NESTING_TOO_DEEP"]);
  // 100 fragments side by side
  const many = Array.from({ length: 100 }, (_, i) => `fragment M${i} on Query{__typename}`).join(" ");
  const spreads = Array.from({ length: 100 }, (_, i) => `...M${i}`).join(" ");
  res = await postGraphQL(server.url, { query: `query{${spreads}} ${many}` });
  expect(res.body).toEqual({ data: { __typename: "Query" } });
  res = await postGraphQL(server.url, { query: getIntrospectionQuery({ descriptions: true, inputValueDeprecation: true }) });
  expect(res.body.errors).toBeUndefined();
  expect(res.body.data.__schema.types.length).toBeGreaterThan(10);
});

test("another tenant is still served while unique 1,000-fragment chains are sent", async () => {
  const victim = await createUser(db, "Victim");
  await createOrganization(db, victim, "Victim Org");
  const report = await measureOtherTenantServed({
    url: roomy.url,
    victimToken: tokenFor(victim),
    attack: () => postGraphQL(roomy.url, { query: chain(1000) }),
  });
  for (const result of report.attackResults as { body: any }[]) expect(codes(result.body)).toEqual(["TOO_MANY_FRAGMENTS"]);
  expectOtherTenantServed(report);
});
