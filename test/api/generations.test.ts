// Generations over HTTP: start / complete / fail, and listing with filters, cursor pagination and
// fuzzy prompt search.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { twoTenants } from "../helpers/fixtures.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let db: TestDatabase;
let server: TestServer;
let tenants: Awaited<ReturnType<typeof twoTenants>>;
let projectA: string;
let projectA2: string;
beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db);
  tenants = await twoTenants(db);
  const create = async (name: string) => {
    const r = await server.graphql(
      `mutation ($o: UUID!, $n: String!) { createProject(input: { project: { organizationId: $o, name: $n } }) { project { id name } } }`,
      { o: tenants.a.org.id, n: name }, tenants.a.member);
    expect(r.errors).toBeUndefined();
    return r.data.createProject.project.id as string;
  };
  projectA = await create("Images");
  projectA2 = await create("Videos");
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

const START = `mutation ($input: StartGenerationInput!) {
  startGeneration(input: $input) { generation { id status kind model creditsEstimated metadata projectId createdAt } }
}`;
const COMPLETE = `mutation ($id: UUID!, $credits: BigFloat!, $result: JSON) {
  completeGeneration(input: { generationId: $id, credits: $credits, resultMetadata: $result }) { generation { id status creditsCharged metadata } }
}`;
const FAIL = `mutation ($id: UUID!, $error: String) { failGeneration(input: { generationId: $id, error: $error }) { generation { id status error creditsCharged } } }`;
const ACCOUNT = `query ($id: UUID!) { organization(id: $id) { creditAccount { available reserved } } }`;
const code = (response: { errors?: { extensions?: { code?: string } }[] }) => response.errors?.[0]?.extensions?.code;

const input = (over: Record<string, unknown> = {}) => ({
  organizationId: tenants.a.org.id, projectId: projectA, kind: "image", model: "flux-1",
  metadata: { prompt: "a fluffy orange kitten on a sofa", size: "1024x1024" }, estimatedCredits: 5, idempotencyKey: `k-${Math.random()}`,
  ...over,
});

test("start, complete and fail a generation; the account follows", async () => {
  const started = await server.graphql(START, { input: input({ idempotencyKey: "first" }) }, tenants.a.member);
  expect(started.errors).toBeUndefined();
  const g = started.data.startGeneration.generation;
  expect(g).toMatchObject({ status: "running", kind: "image", model: "flux-1", creditsEstimated: "5", projectId: projectA });
  expect((await server.graphql(ACCOUNT, { id: tenants.a.org.id }, tenants.a.member)).data.organization.creditAccount).toEqual({ available: "95", reserved: "5" });
  const repeat = await server.graphql(START, { input: input({ idempotencyKey: "first" }) }, tenants.a.member);
  expect(repeat.data.startGeneration.generation.id).toBe(g.id);

  const done = await server.graphql(COMPLETE, { id: g.id, credits: 3, result: { url: "https://cdn.example/1.png" } }, tenants.a.member);
  expect(done.errors).toBeUndefined();
  expect(done.data.completeGeneration.generation).toMatchObject({ status: "succeeded", creditsCharged: "3", metadata: { url: "https://cdn.example/1.png", size: "1024x1024" } });

  const other = (await server.graphql(START, { input: input() }, tenants.a.member)).data.startGeneration.generation;
  const failed = await server.graphql(FAIL, { id: other.id, error: "provider said no" }, tenants.a.member);
  expect(failed.data.failGeneration.generation).toEqual({ id: other.id, status: "failed", error: "provider said no", creditsCharged: "0" });
  expect((await server.graphql(ACCOUNT, { id: tenants.a.org.id }, tenants.a.member)).data.organization.creditAccount).toEqual({ available: "97", reserved: "0" });
  expect(code(await server.graphql(COMPLETE, { id: other.id, credits: 1 }, tenants.a.member))).toBe("GENERATION_ALREADY_FINISHED");
});

test("bad input and other tenants", async () => {
  const { a, b } = tenants;
  expect(code(await server.graphql(START, { input: input({ estimatedCredits: 0 }) }, a.member))).toBe("INVALID_AMOUNT");
  expect(code(await server.graphql(START, { input: input({ estimatedCredits: "7.5" }) }, a.member))).toBe("INVALID_AMOUNT");
  expect(code(await server.graphql(START, { input: input({ estimatedCredits: "99999999999999" }) }, a.member))).toBe("INVALID_AMOUNT");
  expect(code(await server.graphql(START, { input: input({ estimatedCredits: 5000 }) }, a.member))).toBe("INSUFFICIENT_CREDITS");
  expect(code(await server.graphql(START, { input: input({ metadata: [1, 2] }) }, a.member))).toBe("INVALID_METADATA");
  expect(code(await server.graphql(START, { input: input({ projectId: "00000000-0000-7000-8000-000000000000" }) }, a.member))).toBe("NOT_FOUND");
  const wrongKind = await server.graphql(START, { input: input({ kind: "hologram" }) }, a.member);
  expect(wrongKind.errors?.length).toBeGreaterThan(0); // GraphQL refuses a value outside the enum
  expect(code(await server.graphql(START, { input: input() }, b.member))).toBe("NOT_FOUND");
  const g = (await server.graphql(START, { input: input() }, a.member)).data.startGeneration.generation;
  expect(code(await server.graphql(COMPLETE, { id: g.id, credits: 1 }, b.owner))).toBe("NOT_FOUND");
  expect(code(await server.graphql(FAIL, { id: g.id }, b.owner))).toBe("NOT_FOUND");
  expect(code(await server.graphql(COMPLETE, { id: g.id, credits: 6 }, a.member))).toBe("INVALID_AMOUNT");
  const seen = await server.graphql(`query ($id: UUID!) { generations(condition: { id: $id }) { nodes { id } } }`, { id: g.id }, b.owner);
  expect(seen.data.generations.nodes).toEqual([]);
  const mine = await server.graphql(`query ($id: UUID!) { generations(condition: { id: $id }) { nodes { id } } }`, { id: g.id }, a.member);
  expect(mine.data.generations.nodes).toEqual([{ id: g.id }]);
  await server.graphql(FAIL, { id: g.id }, a.member);
});

describe("listing", () => {
  const ids: string[] = [];
  beforeAll(async () => {
    const prompts = ["a fluffy orange kitten", "a red sports car at night", "snowy mountains at dawn", "an orange cat sleeping", "a bowl of ramen"];
    for (let i = 0; i < 10; i++) {
      const r = await server.graphql(START, {
        input: input({
          projectId: i % 2 ? projectA2 : projectA, kind: i % 3 ? "image" : "video", model: i % 2 ? "veo-2" : "flux-1",
          metadata: { prompt: prompts[i % 5], seed: i, style: i % 4 === 0 ? "anime" : "photo" }, estimatedCredits: 1, idempotencyKey: `list-${i}`,
        }),
      }, tenants.a.member);
      expect(r.errors).toBeUndefined();
      ids.push(r.data.startGeneration.generation.id);
      if (i % 3 === 0) await server.graphql(COMPLETE, { id: ids[i], credits: 1 }, tenants.a.member);
    }
  });

  const LIST = `query ($o: UUID!, $c: GenerationCondition, $first: Int, $after: Cursor) {
    organization(id: $o) {
      generations(condition: $c, first: $first, after: $after, orderBy: [CREATED_AT_DESC, ID_DESC]) {
        totalCount pageInfo { hasNextPage endCursor } nodes { id kind model status projectId metadata }
      }
    }
  }`;
  const list = async (c: Record<string, unknown>, first = 100, after: string | null = null) => {
    const r = await server.graphql(LIST, { o: tenants.a.org.id, c: { ...c, idempotencyKey: undefined }, first, after }, tenants.a.member);
    expect(r.errors).toBeUndefined();
    return r.data.organization.generations;
  };
  const listIds = async (c: Record<string, unknown>) => (await list(c)).nodes.filter((n: any) => ids.includes(n.id)).map((n: any) => ids.indexOf(n.id)).sort((x: number, y: number) => x - y);

  test("filters: project, kind, status, model, created_at range, metadata containment, prompt search", async () => {
    expect(await listIds({ projectId: projectA2 })).toEqual([1, 3, 5, 7, 9]);
    expect(await listIds({ kind: "video" })).toEqual([0, 3, 6, 9]);
    expect(await listIds({ status: "succeeded", projectId: projectA })).toEqual([0, 6]);
    expect(await listIds({ model: "veo-2", kind: "video" })).toEqual([3, 9]);
    expect(await listIds({ metadataContains: { style: "anime" } })).toEqual([0, 4, 8]);
    expect(await listIds({ metadataContains: { style: "anime", seed: 4 } })).toEqual([4]);
    expect(await listIds({ promptSearch: "orange kiten" })).toEqual([0, 5]); // typo tolerated
    // exactly as promptSearch's description says: at least 60% of the text's trigrams must match
    expect(await listIds({ promptSearch: "kiten" })).toEqual([0, 5]);
    expect(await listIds({ promptSearch: "orenge" })).toEqual([]);
    expect(await listIds({ promptSearch: "orenge kiten" })).toEqual([]);
    expect(await listIds({ promptSearch: "kitten orange" })).toEqual([0, 5]);
    expect(await listIds({ promptSearch: "ramen" })).toEqual([4, 9]);
    const all = await list({});
    const times = all.nodes.filter((n: any) => ids.includes(n.id));
    expect(times).toHaveLength(10);
    const byId = await server.graphql(`query ($id: UUID!) { generations(condition: { id: $id }) { nodes { createdAt } } }`, { id: ids[5] }, tenants.a.member);
    const t5 = byId.data.generations.nodes[0].createdAt;
    const after5 = await listIds({ createdFrom: t5 });
    expect(after5[0]).toBe(5);
    expect(after5).toEqual([5, 6, 7, 8, 9].filter((i) => after5.includes(i)));
    expect(await listIds({ createdBefore: t5 })).toEqual(expect.not.arrayContaining([5, 6, 7, 8, 9]));
    expect(await listIds({ createdFrom: t5, createdBefore: t5 })).toEqual([]);
  });

  test("cursor pagination walks every row once, newest first", async () => {
    const seen: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 10; page++) {
      const result: any = await list({}, 3, after);
      seen.push(...result.nodes.map((n: any) => n.id));
      if (!result.pageInfo.hasNextPage) break;
      after = result.pageInfo.endCursor;
    }
    const total = (await list({})).totalCount;
    expect(seen).toHaveLength(total);
    expect(new Set(seen).size).toBe(total);
    expect(seen.filter((id) => ids.includes(id))).toEqual([...ids].reverse());
  });

  test("bad filter values are refused by GraphQL, not by SQL", async () => {
    const r = await server.graphql(LIST, { o: tenants.a.org.id, c: { createdFrom: "not a date" } }, tenants.a.member);
    expect(r.errors?.length).toBeGreaterThan(0);
    expect(JSON.stringify(r.errors)).not.toMatch(/timestamptz|syntax/i);
  });
});
