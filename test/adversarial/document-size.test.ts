// Finding 3 of "no tenant can hurt another": a ~1 KB anonymous document whose fragments spread
// each other twice, twenty deep (2^20 fields), froze the process for seconds while the limits
// were measured, and 500 aliased __schema produced 112 MB. Measuring is now linear in the
// document's size and every selection counts.

import http from "node:http";
import { performance } from "node:perf_hooks";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { createOrganization, createUser } from "../helpers/fixtures.ts";
import { tokenFor } from "../helpers/server.ts";
import { postGraphQL, startServer, type OpsServer } from "../helpers/operations.ts";
import { expectOtherTenantServed, measureOtherTenantServed } from "./other-tenants.ts";

let db: TestDatabase;
let server: OpsServer;

beforeAll(async () => {
  db = await createTestDatabase();
  // Default limits, except the fragment nesting: the bombs below nest 20 and 60 fragments, which
  // the document check (test/adversarial/fragment-chain.test.ts) would refuse before this
  // measurement runs.
  server = await startServer(db, { limits: { maxFragmentDepth: 100 } });
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

/** GET /healthz on a fresh connection (no keep-alive reuse racing the server's idle timeout). */
function healthzStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(`${url}/healthz`, { agent: false }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      })
      .on("error", reject);
  });
}

/** fragment F_i on Query { ...F_{i+1} ...F_{i+1} }, `levels` deep: 2^levels fields, ~1 KB. */
function fragmentBomb(levels: number): string {
  const fragments = Array.from({ length: levels }, (_, i) => `fragment F${i} on Query { ...F${i + 1} ...F${i + 1} }`);
  fragments.push(`fragment F${levels} on Query { __typename }`);
  return `query Bomb { ...F0 }\n${fragments.join("\n")}`;
}

test("the nested-fragment document is refused with QUERY_TOO_COMPLEX, quickly, while /healthz is served", async () => {
  const query = fragmentBomb(20);
  expect(query.length).toBeLessThan(1200);
  let healthz = 0;
  let attackDone = false;
  const attack = postGraphQL(server.url, { query }).finally(() => (attackDone = true));
  // /healthz answered while the attack is in flight (before the fix the event loop was held for
  // seconds, and these requests waited behind it).
  while (!attackDone) {
    expect(await healthzStatus(server.url)).toBe(200);
    healthz += 1;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const res = await attack;
  expect(res.body.data).toBeUndefined();
  expect(res.body.errors).toEqual([expect.objectContaining({ extensions: { code: "QUERY_TOO_COMPLEX" } })]);
  expect(healthz).toBeGreaterThan(0);
});

test("measuring is linear: 60 levels (2^60 fields) are refused as fast as 20", async () => {
  const started = performance.now();
  const res = await postGraphQL(server.url, { query: fragmentBomb(60) });
  const elapsed = performance.now() - started;
  expect(res.body.errors[0].extensions.code).toBe("QUERY_TOO_COMPLEX");
  // Not a timing threshold on the machine: 2^60 walks would never return at all.
  expect(elapsed).toBeLessThan(30_000);
});

test("a fragment that spreads itself is refused with FRAGMENT_CYCLE", async () => {
  const res = await postGraphQL(server.url, {
    query: "query Loop { ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
  });
  expect(res.body.data).toBeUndefined();
  const codes = res.body.errors.map((e: any) => e.extensions?.code);
  expect(codes).toContain("FRAGMENT_CYCLE");
});

test("introspection counts: 500 aliased __schema are refused", async () => {
  const aliases = Array.from({ length: 500 }, (_, i) => `s${i}: __schema { types { name } }`).join(" ");
  const res = await postGraphQL(server.url, { query: `{ ${aliases} }` });
  expect(res.body.data).toBeUndefined();
  expect(res.body.errors).toEqual([expect.objectContaining({ extensions: { code: "QUERY_TOO_COMPLEX" } })]);
  // one introspection (what GraphiQL sends) still works
  const one = await postGraphQL(server.url, { query: "{ __schema { types { name } } }" });
  expect(one.body.errors).toBeUndefined();
  expect(one.body.data.__schema.types.length).toBeGreaterThan(10);
});

test("another tenant is still served while the bomb is thrown again and again", async () => {
  const victim = await createUser(db, "Victim");
  await createOrganization(db, victim, "Victim Org");
  const query = fragmentBomb(20);
  const report = await measureOtherTenantServed({
    url: server.url,
    victimToken: tokenFor(victim),
    attack: () => postGraphQL(server.url, { query }),
  });
  for (const result of report.attackResults as { body: any }[]) {
    expect(result.body.errors[0].extensions.code).toBe("QUERY_TOO_COMPLEX");
  }
  expectOtherTenantServed(report);
});
