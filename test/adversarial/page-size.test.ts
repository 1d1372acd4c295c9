// Finding 6: no default or maximum page size. 30 aliases of `generations { nodes { … } }`
// returned 257 MB and took the server to 1.8 GB. Every connection now has a default and a
// maximum `first`/`last`, and the cost estimate multiplies what is selected by page sizes.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { createOrganization, createUser, type TestUser } from "../helpers/fixtures.ts";
import { tokenFor } from "../helpers/server.ts";
import { postGraphQL, startServer, type OpsServer } from "../helpers/operations.ts";
import { expectOtherTenantServed, measureOtherTenantServed } from "./other-tenants.ts";
import { seedGenerations } from "./seed.ts";

let db: TestDatabase;
let server: OpsServer;
let attacker: TestUser;
let orgId: string;
let auth: Record<string, string>;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startServer(db); // defaults: page 50, at most 200, cost 20,000
  attacker = await createUser(db, "Attacker");
  orgId = (await createOrganization(db, attacker, "Big Org")).id;
  await seedGenerations(db, orgId, 5000);
  auth = { authorization: `Bearer ${tokenFor(attacker)}` };
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

const list = (args: string) => `query L($org: UUID!) { organization(id: $org) { generations${args} { nodes { id } } } }`;

async function count(args: string, variables: Record<string, unknown> = {}) {
  const res = await postGraphQL(server.url, { query: list(args), variables: { org: orgId, ...variables } }, auth);
  return { nodes: res.body.data?.organization?.generations?.nodes?.length, errors: res.body.errors };
}

test("a connection without first/last returns the default page; first up to the maximum is honoured", async () => {
  expect(await count("")).toEqual({ nodes: 50, errors: undefined });
  expect(await count("(first: 200)")).toEqual({ nodes: 200, errors: undefined });
  expect(await count("(first: 0)")).toEqual({ nodes: 0, errors: undefined });
  // last alone: the last 10, not the last 10 of a default first page
  const last = await postGraphQL(
    server.url,
    { query: `query L($org: UUID!) { organization(id: $org) { generations(last: 10, orderBy: CREATED_AT_ASC) { nodes { id } pageInfo { hasPreviousPage } } } }`, variables: { org: orgId } },
    auth,
  );
  expect(last.body.errors).toBeUndefined();
  expect(last.body.data.organization.generations.nodes).toHaveLength(10);
  expect(last.body.data.organization.generations.pageInfo.hasPreviousPage).toBe(true);
});

test("first/last below 0 or over the maximum are refused with INVALID_PAGE_SIZE, as literals and as variables", async () => {
  for (const args of ["(first: -1)", "(first: 201)", "(last: -5)", "(last: 100000)"]) {
    const { nodes, errors } = await count(args);
    expect(nodes).toBeUndefined();
    expect(errors).toEqual([
      expect.objectContaining({ message: expect.stringMatching(/must be a whole number from 0 to 200/), extensions: { code: "INVALID_PAGE_SIZE" } }),
    ]);
  }
  const res = await postGraphQL(
    server.url,
    { query: `query L($org: UUID!, $n: Int) { organization(id: $org) { generations(first: $n) { nodes { id } } } }`, variables: { org: orgId, n: 5000 } },
    auth,
  );
  expect(res.body.errors[0].extensions.code).toBe("INVALID_PAGE_SIZE");
  const ok = await postGraphQL(
    server.url,
    { query: `query L($org: UUID!, $n: Int) { organization(id: $org) { generations(first: $n) { nodes { id } } } }`, variables: { org: orgId, n: null } },
    auth,
  );
  expect(ok.body.data.organization.generations.nodes).toHaveLength(50);
});

const aliases = (n: number, args: string) =>
  `query A($org: UUID!) { organization(id: $org) { ${Array.from(
    { length: n },
    (_, i) => `g${i}: generations${args} { nodes { id model status metadata createdAt } }`,
  ).join(" ")} } }`;

test("30 aliases of a list: with the default page they are bounded, with first: 200 refused as QUERY_TOO_COSTLY", async () => {
  const bounded = await postGraphQL(server.url, { query: aliases(30, ""), variables: { org: orgId } }, auth);
  expect(bounded.body.errors).toBeUndefined();
  const pages = Object.values(bounded.body.data.organization) as { nodes: unknown[] }[];
  expect(pages).toHaveLength(30);
  for (const page of pages) expect(page.nodes).toHaveLength(50);

  const costly = await postGraphQL(server.url, { query: aliases(30, "(first: 200)"), variables: { org: orgId } }, auth);
  expect(costly.body.data).toBeUndefined();
  expect(costly.body.errors).toEqual([expect.objectContaining({ extensions: { code: "QUERY_TOO_COSTLY" } })]);
  // a page size from a variable is costed at the maximum
  const variable = await postGraphQL(
    server.url,
    { query: aliases(30, "(first: $n)").replace("$org: UUID!", "$org: UUID!, $n: Int"), variables: { org: orgId, n: 1 } },
    auth,
  );
  expect(variable.body.errors[0].extensions.code).toBe("QUERY_TOO_COSTLY");
});

test("nested connections multiply: organizations × members within the default cost, explicit large pages refused", async () => {
  const nested = (args: string) =>
    `{ organizations${args} { nodes { id organizationMembers${args} { nodes { role user { name email } } } } } }`;
  const ok = await postGraphQL(server.url, { query: nested("") }, auth);
  expect(ok.body.errors).toBeUndefined();
  const big = await postGraphQL(server.url, { query: nested("(first: 200)") }, auth);
  expect(big.body.errors[0].extensions.code).toBe("QUERY_TOO_COSTLY");
});

test("another tenant is still served while 30-alias list documents are sent again and again", async () => {
  const victim = await createUser(db, "Victim");
  await createOrganization(db, victim, "Victim Org");
  // The reported attack: no `first`, so (before the default page size) every row, 30 times.
  const query = aliases(30, "");
  const report = await measureOtherTenantServed({
    url: server.url,
    victimToken: tokenFor(victim),
    attack: () => postGraphQL(server.url, { query, variables: { org: orgId } }, auth),
  });
  expectOtherTenantServed(report);
});
