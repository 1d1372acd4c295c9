// GraphQL subscriptions over a real websocket (graphql-ws client) against a real server: each
// subscriber gets only what RLS lets it read, and delivery stops at logout, removal or expiry.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { addMember, createUser, twoTenants } from "../helpers/fixtures.ts";
import { startTestServer, tokenFor, type TestServer } from "../helpers/server.ts";
import { connect, trackedSockets, sleep, subscribe } from "../helpers/realtime.ts";

let db: TestDatabase;
let server: TestServer;
let tenants: Awaited<ReturnType<typeof twoTenants>>;
let projectA: string;
const sockets = trackedSockets(() => server.url);

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db);
  tenants = await twoTenants(db);
  const { rows } = await db.queryAs(tenants.a.member, "insert into app_public.projects (organization_id, name) values ($1, 'Images') returning id", [tenants.a.org.id]);
  projectA = rows[0].id;
  // room for the members the tests add
  await db.owner.query("update app_public.organizations set plan_id = 'enterprise' where id = $1", [tenants.a.org.id]);
});
afterEach(() => sockets.closeAll());
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

const client = (token: Parameters<typeof connect>[1]) => sockets.connect(token);

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

// Issue 20, item 9: the row used to be read at delivery time, so a generation completed right
// after it started was told `succeeded` twice and never `running`.
test("each change is delivered as it was: running, then succeeded, each once and in order", async () => {
  const c = client(tenants.a.member);
  const sub = subscribe(c, GENERATIONS, { org: tenants.a.org.id });
  await sub.waitForCount(1);
  const id = await startGeneration();
  await server.graphql(COMPLETE, { id }, tenants.a.member);
  await sub.waitFor((m) => m.data?.generationUpdated?.generation?.status === "succeeded");
  await sleep(300); // nothing more should come
  const statuses = sub.messages
    .map((m) => m.data?.generationUpdated)
    .filter((u) => u?.generationId === id)
    .map((u) => [u.generation.status, u.generation.creditsCharged]);
  expect(statuses).toEqual([
    ["running", null],
    ["succeeded", "3"],
  ]);
});

test("B's subscriber of A's organization id is refused and receives nothing", async () => {
  const c = client(tenants.b.owner);
  const sub = subscribe(c, GENERATIONS, { org: tenants.a.org.id });
  const credits = subscribe(c, CREDITS, { org: tenants.a.org.id });
  const events = subscribe(c, EVENTS, { org: tenants.a.org.id });
  for (const s of [sub, credits, events]) {
    await s.ended();
    expect(s.messages).toHaveLength(1);
    expect(s.messages[0].errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    expect(s.messages[0].data?.generationUpdated ?? null).toBeNull();
  }
  // an organization that does not exist answers the same
  const ghost = subscribe(c, CREDITS, { org: "00000000-0000-7000-8000-000000000000" });
  await ghost.ended();
  expect(ghost.messages[0].errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
  // a project of A under B's own organization id: NOT_FOUND too
  const project = subscribe(c, GENERATIONS, { org: tenants.b.org.id, project: projectA });
  await project.ended();
  expect(project.messages[0].errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
  // and A's activity reaches nobody on B's socket
  await server.graphql(COMPLETE, { id: await startGeneration() }, tenants.a.member);
  await sleep(500);
  expect([sub, credits, events, ghost, project].map((s) => s.messages.length)).toEqual([1, 1, 1, 1, 1]);
});

test("a member removed mid-subscription receives nothing after the removal; the subscription ends", async () => {
  const leaver = await createUser(db, "Leaver");
  await addMember(db, tenants.a.org.id, leaver, "member");
  const c = client(leaver);
  const gens = subscribe(c, GENERATIONS, { org: tenants.a.org.id });
  const credits = subscribe(c, CREDITS, { org: tenants.a.org.id });
  await gens.waitForCount(1);
  await credits.waitForCount(1);
  const before = await startGeneration();
  await gens.waitFor((m) => m.data?.generationUpdated?.generationId === before);

  const removed = await server.graphql(
    `mutation ($o: UUID!, $u: UUID!) { removeMember(input: { organizationId: $o, userId: $u }) { success } }`,
    { o: tenants.a.org.id, u: leaver.userId },
    tenants.a.owner,
  );
  expect(removed.errors).toBeUndefined();
  const after = await startGeneration();
  await server.graphql(COMPLETE, { id: after }, tenants.a.member);
  await gens.ended();
  await credits.ended();
  expect(gens.completed && credits.completed).toBe(true);
  expect(gens.messages.some((m) => m.data?.generationUpdated?.generationId === after)).toBe(false);
  expect(JSON.stringify([...gens.messages, ...credits.messages])).not.toContain(after);
  // the socket stays open (the credentials are fine); subscribing again is refused
  const again = subscribe(c, CREDITS, { org: tenants.a.org.id });
  await again.ended();
  expect(again.messages[0].errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
});

test("logout ends delivery: the socket closes with 4401 at the next event", async () => {
  const user = await createUser(db, "Logs Out");
  await addMember(db, tenants.a.org.id, user, "member");
  const token = tokenFor(user);
  const c = client(token);
  const sub = subscribe(c, GENERATIONS, { org: tenants.a.org.id });
  await sub.waitForCount(1);
  const out = await server.graphql(`mutation { logout(input: {}) { success } }`, {}, token);
  expect(out.data.logout.success).toBe(true);
  const id = await startGeneration();
  const closed = await c.closed();
  expect(closed).toEqual({ code: 4401, reason: "Session has ended; sign in again." });
  expect(JSON.stringify(sub.messages)).not.toContain(id);
  // and the same token cannot open a new socket
  const again = client(token);
  expect(await again.closed()).toEqual({ code: 4401, reason: "Session has ended; sign in again." });
});

test("a forged, malformed, expired or missing token is refused at connection_init with a clear reason", async () => {
  const user = tenants.a.member;
  const cases: [string | null, string][] = [
    [tokenFor(user).replace(/.$/, (ch) => (ch === "A" ? "B" : "A")), "Token is not valid."],
    [
      // signed with another secret
      (await import("jsonwebtoken")).default.sign({ sub: user.userId, session_id: user.sessionId, exp: Math.floor(Date.now() / 1000) + 60 }, "x".repeat(40), { algorithm: "HS256", audience: "tenantbase", issuer: "tenantbase" }),
      "Token is not valid.",
    ],
    [tokenFor(user, { exp: Math.floor(Date.now() / 1000) - 10 }), "Token has expired."],
    ["tb_live_not-a-real-key", "API key is not valid, revoked or expired."],
    ["not-a-jwt", "Token is not valid."],
    [null, 'connection_init must carry {"Authorization": "Bearer <token>"}.'],
  ];
  for (const [token, reason] of cases) {
    const c = client(token);
    const sub = subscribe(c, CREDITS, { org: tenants.a.org.id });
    expect(await c.closed()).toEqual({ code: 4401, reason });
    expect(sub.messages).toEqual([]);
  }
});

test("an expiring token closes the socket when it expires, with no event needed", async () => {
  const c = client(tokenFor(tenants.a.member, { exp: Math.floor(Date.now() / 1000) + 2 }));
  const sub = subscribe(c, CREDITS, { org: tenants.a.org.id });
  await sub.waitForCount(1);
  expect(await c.closed()).toEqual({ code: 4401, reason: "Token has expired." });
});

test("creditAccountUpdated: the balance now, then every change", async () => {
  const c = client(tenants.a.admin);
  const sub = subscribe(c, CREDITS, { org: tenants.a.org.id });
  await sub.waitForCount(1);
  const first = sub.messages[0].data.creditAccountUpdated;
  expect(first).toMatchObject({ initial: true, organizationId: tenants.a.org.id });
  const id = await startGeneration();
  const { available, reserved } = first.creditAccount as { available: string; reserved: string };
  const afterReserve = await sub.waitFor((m) => m.data?.creditAccountUpdated?.creditAccount?.reserved === String(Number(reserved) + 5));
  expect(afterReserve.data.creditAccountUpdated).toMatchObject({ initial: false, creditAccount: { available: String(Number(available) - 5) } });
  await server.graphql(COMPLETE, { id }, tenants.a.member);
  // captured 3 of the 5 reserved: 2 go back
  await sub.waitFor((m) => m.data?.creditAccountUpdated?.creditAccount?.available === String(Number(available) - 3));
});

test("organizationEvents: members joining, changing role and leaving, invitations, renames", async () => {
  const c = client(tenants.a.owner);
  const sub = subscribe(c, EVENTS, { org: tenants.a.org.id });
  await sub.waitFor((m) => m.data?.organizationEvents?.kind === "SUBSCRIBED");
  const joiner = await createUser(db, "Joiner");
  await addMember(db, tenants.a.org.id, joiner, "member");
  const joined = await sub.waitFor((m) => m.data?.organizationEvents?.kind === "MEMBER_JOINED");
  expect(joined.data.organizationEvents).toMatchObject({ userId: joiner.userId, member: { role: "member" } });
  const promoted = await server.graphql(
    `mutation ($o: UUID!, $u: UUID!) { changeMemberRole(input: { organizationId: $o, userId: $u, role: admin }) { membership { role } } }`,
    { o: tenants.a.org.id, u: joiner.userId },
    tenants.a.owner,
  );
  expect(promoted.errors).toBeUndefined();
  const changed = await sub.waitFor((m) => m.data?.organizationEvents?.kind === "MEMBER_ROLE_CHANGED");
  expect(changed.data.organizationEvents.member).toEqual({ role: "admin" });
  const invited = await server.graphql(
    `mutation ($o: UUID!) { inviteMember(input: { organizationId: $o, email: "new@example.com" }) { invitation { id } } }`,
    { o: tenants.a.org.id },
    tenants.a.owner,
  );
  expect(invited.errors).toBeUndefined();
  const invitation = await sub.waitFor((m) => m.data?.organizationEvents?.kind === "INVITATION_CREATED");
  expect(invitation.data.organizationEvents.invitationId).toEqual(expect.any(String));
  const removed = await server.graphql(`mutation ($o: UUID!, $u: UUID!) { removeMember(input: { organizationId: $o, userId: $u }) { success } }`, { o: tenants.a.org.id, u: joiner.userId }, tenants.a.owner);
  expect(removed.errors).toBeUndefined();
  const left = await sub.waitFor((m) => m.data?.organizationEvents?.kind === "MEMBER_LEFT");
  expect(left.data.organizationEvents).toMatchObject({ userId: joiner.userId, member: null });
  await db.owner.query("update app_public.organizations set plan_id = 'pro' where id = $1", [tenants.a.org.id]);
  const plan = await sub.waitFor((m) => m.data?.organizationEvents?.kind === "PLAN_CHANGED");
  expect(plan.data.organizationEvents.organization.planId).toBe("pro");
  await db.owner.query("update app_public.organizations set plan_id = 'enterprise' where id = $1", [tenants.a.org.id]);
});

test("projectId narrows generationUpdated to one project", async () => {
  const { rows } = await db.queryAs(tenants.a.member, "insert into app_public.projects (organization_id, name) values ($1, 'Videos') returning id", [tenants.a.org.id]);
  const c = client(tenants.a.member);
  const sub = subscribe(c, GENERATIONS, { org: tenants.a.org.id, project: rows[0].id });
  await sub.waitForCount(1);
  const elsewhere = await startGeneration();
  const r = await server.graphql(START, {
    input: { organizationId: tenants.a.org.id, projectId: rows[0].id, kind: "video", model: "m", metadata: {}, estimatedCredits: 1, idempotencyKey: "videos-1" },
  }, tenants.a.member);
  const here = r.data.startGeneration.generation.id;
  await sub.waitFor((m) => m.data?.generationUpdated?.generationId === here);
  expect(JSON.stringify(sub.messages)).not.toContain(elsewhere);
});

test("an API key subscribes to its own organization only", async () => {
  const created = await server.graphql(
    `mutation ($o: UUID!) { createApiKey(input: { organizationId: $o, name: "realtime", role: member }) { secret } }`,
    { o: tenants.a.org.id },
    tenants.a.owner,
  );
  expect(created.errors).toBeUndefined();
  const secret = JSON.stringify(created.data).match(/tb_live_[A-Za-z0-9_-]+/)![0];
  const c = client(secret);
  const mine = subscribe(c, CREDITS, { org: tenants.a.org.id });
  const theirs = subscribe(c, CREDITS, { org: tenants.b.org.id });
  await mine.waitForCount(1);
  expect(mine.messages[0].data.creditAccountUpdated.initial).toBe(true);
  await theirs.ended();
  expect(theirs.messages[0].errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
});

test("queries and mutations are not served over the websocket", async () => {
  const c = client(tenants.a.member);
  const sub = subscribe(c, `{ currentUser { id } }`);
  await sub.ended();
  expect(sub.messages).toEqual([]);
  expect((sub.error as any)?.[0]?.extensions?.code ?? (sub.error as any)?.[0]?.message).toBe("SUBSCRIPTIONS_ONLY");
});

// (last: it cuts this server's LISTEN connection)
test("a lost LISTEN connection ends subscriptions with an error (events may have been missed), and subscribing again works", async () => {
  const c = client(tenants.a.member);
  const sub = subscribe(c, CREDITS, { org: tenants.a.org.id });
  await sub.waitForCount(1);
  // Only this file's database: test files run in parallel on one cluster, and another file's job
  // worker LISTENs too (cutting it failed test/workers/credit-jobs.test.ts now and then).
  await db.root.query("select pg_terminate_backend(pid) from pg_stat_activity where query like 'LISTEN %' and datname = $1 and pid <> pg_backend_pid()", [db.name]);
  await sub.ended();
  expect(JSON.stringify([sub.messages, sub.error])).toContain("DATABASE_UNAVAILABLE");
  const again = subscribe(c, CREDITS, { org: tenants.a.org.id });
  await again.waitForCount(1);
  expect(again.messages[0].data.creditAccountUpdated.initial).toBe(true);
});
