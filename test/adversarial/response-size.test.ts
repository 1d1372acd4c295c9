// Issue 25, A7: within the cost limit, 20 aliases × 200 generations × 64 KB of metadata (made for
// free by starting and failing generations) answered 258 MB, +690 MB of server memory. Metadata
// is now bounded (16 kB of JSON text, INVALID_METADATA as before for a bad value), and every response has a byte budget
// (GRAPHQL_MAX_RESPONSE_BYTES): past it the answer is one RESPONSE_TOO_LARGE error, no data. And
// the cost estimate weighs a JSON value as 5 values, so the finding's query never runs.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { createOrganization, createUser, type TestUser } from "../helpers/fixtures.ts";
import { generationHelpers } from "../helpers/generations.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let db: TestDatabase;
let server: TestServer; // default limits (5 MB)
let user: TestUser;
const { project, start, fail } = generationHelpers(() => db);

const METADATA = { notes: "m".repeat(15_000) }; // just under 16 kB

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db);
  // 200 generations in one hour: the hourly generation quota (test/adversarial/state-growth.test.ts)
  // is beside the point of this attack, which is what the rows cost to read back.
  await db.owner.query("update app_public.plans set max_generations_per_hour = null where id = 'free'");
  user = await createUser(db, "Hoarder");
  const org = await createOrganization(db, user, "Hoarder Org");
  const projectId = await project(user, org.id);
  // 200 failed generations with ~15 kB of metadata each: they cost nothing
  for (let i = 0; i < 200; i++) {
    const generation = await start(user, org.id, projectId, 1, `g${i}`, METADATA);
    await fail(user, generation.id);
  }
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

const START = `mutation Start($input: StartGenerationInput!) { startGeneration(input: $input) { generation { id } } }`;

test("metadata past 16 kB is refused with INVALID_METADATA", async () => {
  const org = (await db.queryAs(user, "select organization_id, id from app_public.projects limit 1")).rows[0];
  const input = (metadata: unknown, key: string) => ({
    organizationId: org.organization_id,
    projectId: org.id,
    kind: "image",
    model: "flux-1",
    metadata,
    estimatedCredits: "1",
    idempotencyKey: key,
  });
  const big = await server.graphql(START, { input: input({ notes: "x".repeat(65_000) }, "big") }, user);
  expect(big.errors?.map((e) => e.extensions?.code)).toEqual(["INVALID_METADATA"]);
  const fits = await server.graphql(START, { input: input(METADATA, "fits") }, user);
  expect(fits.errors).toBeUndefined();
});

test("the finding's 20 aliases of 200 generations (~60 MB) are refused before running: a JSON value weighs 5", async () => {
  const aliases = Array.from({ length: 20 }, (_, i) => `g${i}: generations(first: 200) { nodes { id metadata } }`).join("\n");
  const res = await server.graphql(`query Hoard {\n${aliases}\n}`, {}, user);
  expect(res.data).toBeUndefined();
  expect(res.errors?.map((e) => e.extensions?.code)).toEqual(["QUERY_TOO_COSTLY"]);
});

test("within the cost limit, 390 rows of metadata (~5.9 MB) answer RESPONSE_TOO_LARGE, without data", async () => {
  const res = await server.graphql(
    `query Most { a: generations(first: 200) { nodes { id metadata } } b: generations(first: 190, offset: 10) { nodes { id metadata } } }`,
    {},
    user,
  );
  expect(res.data).toBeUndefined();
  expect(res.errors).toEqual([
    expect.objectContaining({ extensions: { code: "RESPONSE_TOO_LARGE" }, message: expect.stringMatching(/larger than 5000000 bytes/) }),
  ]);
});

test("one page of the same rows (~3 MB) is within the budget and answered in full", async () => {
  const res = await server.graphql(`{ generations(first: 200) { nodes { id metadata } } }`, {}, user);
  expect(res.errors).toBeUndefined();
  expect(res.data.generations.nodes.length).toBeGreaterThanOrEqual(200);
});

test("the budget is configurable: 1 MB refuses the page that 5 MB allowed", async () => {
  const small = await startTestServer(db, { limits: { maxResponseBytes: 1_000_000 } });
  try {
    const res = await small.graphql(`{ generations(first: 200) { nodes { id metadata } } }`, {}, user);
    expect(res.data).toBeUndefined();
    expect(res.errors?.map((e) => e.extensions?.code)).toEqual(["RESPONSE_TOO_LARGE"]);
    const ok = await small.graphql(`{ generations(first: 10) { nodes { id metadata } } }`, {}, user);
    expect(ok.errors).toBeUndefined();
    expect(ok.data.generations.nodes).toHaveLength(10);
  } finally {
    await small.close();
  }
});
