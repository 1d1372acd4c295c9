// organizationUsage over HTTP: members get their buckets; others and bad ranges get codes.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { twoTenants } from "../helpers/fixtures.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let db: TestDatabase;
let server: TestServer;
let tenants: Awaited<ReturnType<typeof twoTenants>>;
beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db);
  tenants = await twoTenants(db);
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

const USAGE = `query ($o: UUID!, $from: Date!, $to: Date!, $interval: UsageInterval) {
  organizationUsage(organizationId: $o, from: $from, to: $to, interval: $interval) {
    bucketStart kind model generations succeeded failed credits
  }
}`;
const code = (r: { errors?: { extensions?: { code?: string } }[] }) => r.errors?.[0]?.extensions?.code;

test("members see their usage per bucket, kind and model", async () => {
  const { a } = tenants;
  const p = (await db.queryAs(a.member, "insert into app_public.projects (organization_id, name) values ($1, 'P') returning id", [a.org.id])).rows[0].id;
  const start = `mutation ($input: StartGenerationInput!) { startGeneration(input: $input) { generation { id } } }`;
  const ids: string[] = [];
  for (const [i, model] of ["flux-1", "flux-1", "veo-2"].entries()) {
    const r = await server.graphql(start, { input: { organizationId: a.org.id, projectId: p, kind: model === "veo-2" ? "video" : "image", model, metadata: {}, estimatedCredits: 10, idempotencyKey: `u${i}` } }, a.member);
    expect(r.errors).toBeUndefined();
    ids.push(r.data.startGeneration.generation.id);
  }
  const completed = await server.graphql(`mutation ($id: UUID!) { completeGeneration(input: { generationId: $id, credits: "6" }) { generation { id } } }`, { id: ids[0] }, a.member);
  expect(completed.errors).toBeUndefined();
  await server.graphql(`mutation ($id: UUID!) { failGeneration(input: { generationId: $id }) { generation { id } } }`, { id: ids[1] }, a.member);

  const today = new Date().toISOString().slice(0, 10);
  const month = `${today.slice(0, 7)}-01`;
  const tomorrow = new Date(Date.now() + 86400000).toISOString().slice(0, 10);
  for (const [interval, bucket] of [["DAY", today], ["day", today], ["month", month]] as const) {
    const r = await server.graphql(USAGE, { o: a.org.id, from: today, to: tomorrow, interval }, a.admin);
    if (interval === "DAY") {
      expect(r.errors?.length).toBeGreaterThan(0); // enum values are lowercase
      continue;
    }
    expect(r.errors).toBeUndefined();
    expect(r.data.organizationUsage).toEqual([
      { bucketStart: bucket, kind: "image", model: "flux-1", generations: "2", succeeded: "1", failed: "1", credits: "6" },
      { bucketStart: bucket, kind: "video", model: "veo-2", generations: "1", succeeded: "0", failed: "0", credits: "0" },
    ]);
  }
});

test("other tenants, anonymous callers and bad ranges", async () => {
  const { a, b } = tenants;
  expect(code(await server.graphql(USAGE, { o: a.org.id, from: "2026-01-01", to: "2026-02-01" }, b.member))).toBe("NOT_FOUND");
  expect((await server.graphql(USAGE, { o: a.org.id, from: "2026-01-01", to: "2026-02-01" })).errors?.length).toBeGreaterThan(0);
  expect(code(await server.graphql(USAGE, { o: a.org.id, from: "2026-02-01", to: "2026-01-01" }, a.member))).toBe("INVALID_RANGE");
  expect(code(await server.graphql(USAGE, { o: a.org.id, from: "1990-01-01", to: "2026-01-01" }, a.member))).toBe("INVALID_RANGE");
  const notADate = await server.graphql(USAGE, { o: a.org.id, from: "soon", to: "2026-01-01" }, a.member);
  expect(notADate.errors?.length).toBeGreaterThan(0);
  expect(notADate.data?.organizationUsage ?? null).toBeNull();
});
