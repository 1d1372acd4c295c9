// GraphQL subscriptions over a real websocket (graphql-ws client) against a real server: each
// subscriber gets only what RLS lets it read, and delivery stops at logout, removal or expiry.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { addMember, createUser, twoTenants } from "../helpers/fixtures.ts";
import { startTestServer, tokenFor, type TestServer } from "../helpers/server.ts";
import { connect, sleep, subscribe, type RealtimeClient } from "../helpers/realtime.ts";

let db: TestDatabase;
let server: TestServer;
let tenants: Awaited<ReturnType<typeof twoTenants>>;
let projectA: string;
const clients: RealtimeClient[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db);
  tenants = await twoTenants(db);
  const { rows } = await db.queryAs(tenants.a.member, "insert into app_public.projects (organization_id, name) values ($1, 'Images') returning id", [tenants.a.org.id]);
  projectA = rows[0].id;
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.dispose()));
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

function client(token: Parameters<typeof connect>[1]) {
  const c = connect(server.url, token);
  clients.push(c);
  return c;
}

const GENERATIONS = `subscription ($org: UUID!, $project: UUID) {
  generationUpdated(organizationId: $org, projectId: $project) {
    initial generationId
    generation { id status creditsCharged metadata }
    creditAccount { available reserved }
  }
}`;
const CREDITS = `subscription ($org: UUID!) { creditAccountUpdated(organizationId: $org) { initial organizationId creditAccount { available reserved } } }`;
const EVENTS = `subscription ($org: UUID!) { organizationEvents(organizationId: $org) { kind userId invitationId organization { name planId } member { role } } }`;

const START = `mutation ($input: StartGenerationInput!) { startGeneration(input: $input) { generation { id } } }`;
const COMPLETE = `mutation ($id: UUID!) { completeGeneration(input: { generationId: $id, credits: "3", resultMetadata: { url: "https://cdn.example/1.png" } }) { generation { id } } }`;

async function startGeneration(user = tenants.a.member, key = `k-${Math.random()}`) {
  const r = await server.graphql(START, {
    input: { organizationId: tenants.a.org.id, projectId: projectA, kind: "image", model: "flux-1", metadata: { prompt: "a cat" }, estimatedCredits: 5, idempotencyKey: key },
  }, user);
  expect(r.errors).toBeUndefined();
  return r.data.startGeneration.generation.id as string;
}

// (How fast, commit to client, is measured by `npm run bench:realtime`, not asserted here.)
test("A's subscriber gets A's generation completing, with its balance", async () => {
  const c = client(tenants.a.member);
  const sub = subscribe(c, GENERATIONS, { org: tenants.a.org.id });
  await sub.waitForCount(1);
  expect(sub.messages[0].data.generationUpdated).toMatchObject({ initial: true, generationId: null, generation: null });
  const id = await startGeneration();
  await server.graphql(COMPLETE, { id }, tenants.a.member);
  const done = await sub.waitFor((m) => m.data?.generationUpdated?.generation?.status === "succeeded");
  expect(done.data.generationUpdated).toMatchObject({
    initial: false,
    generationId: id,
    generation: { id, status: "succeeded", creditsCharged: "3", metadata: { url: "https://cdn.example/1.png" } },
  });
  expect(done.data.generationUpdated.creditAccount).toEqual({ available: expect.any(String), reserved: "0" });
});
