// Stored state that grew without bound (issue 25, findings A4 and A9), over real HTTP: 1,000 API
// keys in 3.2 s; 611 generations (started and failed, 0 credits) in 10 s; 925 project
// create/delete cycles in 8 s; 698 reserve/release pairs that left 698 expiry jobs in the shared
// queue. Now each is bounded per organization by its plan, refused with a stable code whose
// extensions say which quota and when it frees up, and a settled reservation leaves no job.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { createOrganization, createUser, type TestUser } from "../helpers/fixtures.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let db: TestDatabase;
let server: TestServer;
beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db);
  // A plan like the free one with smaller numbers, so that the attack runs into them quickly.
  await db.owner.query(
    `insert into app_public.plans (id, name, max_seats, max_projects, monthly_credits, max_api_keys, max_generations_per_hour,
       max_generations_per_period, max_projects_created_per_hour, max_stored_projects, max_open_reservations)
     values ('tight', 'Tight', 3, 3, 0, 5, 12, 1000, 6, 100, 1000)`,
  );
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

/**
 * Hourly quotas count per UTC clock hour: a test that crossed the hour would see its window
 * start again. Tests that fill a window start at least 30 s before the hour turns (waiting for
 * the turn when closer), whatever the clock says.
 */
async function awayFromTheHourTurn() {
  const { rows } = await db.owner.query("select extract(epoch from app_hidden.quota_hour_start(now()) + interval '1 hour' - clock_timestamp()) as left");
  const left = Number(rows[0].left);
  if (left < 30) await new Promise((resolve) => setTimeout(resolve, (left + 1) * 1000));
}
beforeEach(() => awayFromTheHourTurn(), 45000);

const code = (response: { errors?: { extensions?: { code?: string } }[] }) => response.errors?.[0]?.extensions?.code;

async function attacker(plan = "tight") {
  const owner = await createUser(db, "Attacker");
  const org = await createOrganization(db, owner, "Attacker Org");
  await db.owner.query("update app_public.organizations set plan_id = $2 where id = $1", [org.id, plan]);
  await db.owner.query("select app_private.grant_credits($1, 100000, 'purchase', null, null)", [org.id]);
  return { owner, org };
}

async function createProject(owner: TestUser, org: string, name: string) {
  return server.graphql(
    `mutation($o: UUID!, $n: String!) { createProject(input: {project: {organizationId: $o, name: $n}}) { project { id } } }`,
    { o: org, n: name },
    owner,
  );
}

test("API keys: 30 concurrent createApiKey requests against a limit of 5 create exactly 5", async () => {
  const { owner, org } = await attacker();
  const responses = await Promise.all(
    Array.from({ length: 30 }, (_, i) =>
      server.graphql(`mutation($o: UUID!, $n: String!) { createApiKey(input: {organizationId: $o, name: $n}) { secret } }`, { o: org.id, n: `key ${i}` }, owner),
    ),
  );
  const created = responses.filter((r) => r.data?.createApiKey?.secret);
  expect(created).toHaveLength(5);
  const refused = responses.filter((r) => !r.data?.createApiKey);
  expect(new Set(refused.map(code))).toEqual(new Set(["API_KEY_LIMIT_REACHED"]));
  expect(refused[0].errors![0].extensions).toEqual({ code: "API_KEY_LIMIT_REACHED", limit: 5 });
  const { rows } = await db.owner.query("select count(*)::int as n from app_public.api_keys where organization_id = $1", [org.id]);
  expect(rows[0].n).toBe(5);
});

test("generations started and failed in a loop stop at the hourly quota, with QUOTA_EXCEEDED and when it resets", async () => {
  const { owner, org } = await attacker();
  const project = (await createProject(owner, org.id, "Flood")).data.createProject.project.id;
  const START = `mutation($input: StartGenerationInput!) { startGeneration(input: $input) { generation { id } } }`;
  const FAIL = `mutation($id: UUID!) { failGeneration(input: {generationId: $id}) { generation { status } } }`;
  let started = 0;
  let refusal: any;
  for (let i = 0; i < 40 && !refusal; i++) {
    const r = await server.graphql(START, {
      input: { organizationId: org.id, projectId: project, kind: "image", model: "m", metadata: { prompt: "x" }, estimatedCredits: "1", idempotencyKey: `flood-${i}` },
    }, owner);
    if (r.errors) refusal = r.errors[0];
    else {
      started++;
      await server.graphql(FAIL, { id: r.data.startGeneration.generation.id }, owner);
    }
  }
  expect(started).toBe(12);
  expect(refusal.extensions).toEqual({
    code: "QUOTA_EXCEEDED",
    quota: "generationsPerHour",
    limit: 12,
    resetsAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:00:00Z$/),
    retryAfter: expect.any(Number),
  });
  expect(refusal.message).toMatch(/12 generations per hour/);
  const { rows } = await db.owner.query("select count(*)::int as n from app_public.generations where organization_id = $1", [org.id]);
  expect(rows[0].n).toBe(12);
});

test("project create/delete cycles stop at the hourly quota: deleted projects still count", async () => {
  const { owner, org } = await attacker();
  let cycles = 0;
  let refusal: any;
  for (let i = 0; i < 40 && !refusal; i++) {
    const created = await createProject(owner, org.id, `Cycle ${i}`);
    if (created.errors) {
      refusal = created.errors[0];
      break;
    }
    const deleted = await server.graphql(`mutation($id: UUID!) { deleteProject(input: {id: $id}) { project { id } } }`, { id: created.data.createProject.project.id }, owner);
    expect(deleted.errors).toBeUndefined();
    cycles++;
  }
  expect(cycles).toBe(6);
  expect(refusal.extensions).toMatchObject({ code: "QUOTA_EXCEEDED", quota: "projectsCreatedPerHour", limit: 6 });
  const { rows } = await db.owner.query(
    `select (select count(*)::int from app_public.projects where organization_id = $1) as projects,
            (select count(*)::int from app_public.audit_events where organization_id = $1 and action like 'project.%') as audit`,
    [org.id],
  );
  expect(rows[0]).toEqual({ projects: 6, audit: 6 });
});

test("reserve/release pairs leave no expiry job in the shared queue", async () => {
  const { owner, org } = await attacker();
  const RESERVE = `mutation($o: UUID!, $k: String!) { reserveCredits(input: {organizationId: $o, amount: "1", idempotencyKey: $k}) { creditReservation { id } } }`;
  const RELEASE = `mutation($id: UUID!) { releaseCredits(input: {reservationId: $id}) { creditReservation { status } } }`;
  const CAPTURE = `mutation($id: UUID!) { captureCredits(input: {reservationId: $id, amount: "1"}) { creditReservation { status } } }`;
  for (let i = 0; i < 30; i++) {
    const r = await server.graphql(RESERVE, { o: org.id, k: `pair-${i}` }, owner);
    expect(r.errors).toBeUndefined();
    const settled = await server.graphql(i % 2 ? RELEASE : CAPTURE, { id: r.data.reserveCredits.creditReservation.id }, owner);
    expect(settled.errors).toBeUndefined();
  }
  const { rows } = await db.owner.query(
    `select count(*)::int as n from graphile_worker.jobs
     where key in (select 'credits:expire-reservation:' || r.id from app_public.credit_reservations r where r.organization_id = $1)`,
    [org.id],
  );
  expect(rows[0].n).toBe(0);
});
