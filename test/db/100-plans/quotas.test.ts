// Quotas on what an organization can create (db/functions/100-plans/quotas.sql): generations per
// hour and per period, projects created or restored per hour and stored in total, open credit
// reservations; QUOTA_EXCEEDED with the quota, its limit and its reset in extensions; concurrent
// requests counting each other; an operator's SQL not counted.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createOrganization, createUser } from "../../helpers/fixtures.ts";
import { codeOf } from "../../helpers/codes.ts";
import { tally } from "../../helpers/team.ts";
import { generationHelpers } from "../../helpers/generations.ts";
import { creditHelpers } from "../../helpers/credits.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  // One plan per test, with small quotas.
  await db.owner.query(
    `insert into app_public.plans (id, name, max_projects, monthly_credits, max_generations_per_hour, max_generations_per_period,
       max_projects_created_per_hour, max_stored_projects, max_open_reservations)
     values ('q-gen-hour', 'Q', null, 0, 5, null, null, null, null),
            ('q-gen-period', 'Q', null, 0, null, 4, null, null, null),
            ('q-proj-hour', 'Q', 2, 0, null, null, 4, null, null),
            ('q-proj-stored', 'Q', null, 0, null, null, null, 3, null),
            ('q-open', 'Q', null, 0, null, null, null, null, 3),
            ('q-race', 'Q', null, 0, 7, null, 7, null, null)`,
  );
});
afterAll(() => db?.drop());

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

const { project, start, fail } = generationHelpers(() => db);
const { reserve, release } = creditHelpers(() => db);

async function orgOnPlan(plan: string, credits = 1000) {
  const owner = await createUser(db);
  const org = await createOrganization(db, owner, `Quota ${plan}`);
  await db.owner.query("update app_public.organizations set plan_id = $2 where id = $1", [org.id, plan]);
  await db.owner.query("select app_private.grant_credits($1, $2, 'purchase', null, null)", [org.id, credits]);
  return { owner, org };
}

/** The refusal's code and its extensions (what the server puts next to extensions.code). */
async function refusal(promise: Promise<unknown>) {
  try {
    await promise;
  } catch (error: any) {
    return { code: error.detail, extensions: error.hint ? JSON.parse(error.hint) : {} };
  }
  throw new Error("expected a refusal");
}

/** Moves the organization's hourly windows an hour back: what the clock turning the hour does. */
const turnTheHour = (org: string) =>
  db.owner.query("update app_private.hourly_quota_usage set window_start = window_start - interval '1 hour' where organization_id = $1", [org]);

test("generations per hour: failed ones count; refused with the quota, limit and reset; the next hour starts again", async () => {
  const { owner, org } = await orgOnPlan("q-gen-hour");
  const p = await project(owner, org.id);
  for (let i = 0; i < 5; i++) {
    const g = await start(owner, org.id, p, 1, `g-${i}`);
    await fail(owner, g.id);
  }
  const refused = await refusal(start(owner, org.id, p, 1, "g-5"));
  expect(refused.code).toBe("QUOTA_EXCEEDED");
  expect(refused.extensions).toEqual({ quota: "generationsPerHour", limit: 5, resetsAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:00:00Z$/), retryAfter: expect.any(Number) });
  const { rows } = await db.owner.query("select app_hidden.quota_hour_start(now()) + interval '1 hour' as next");
  expect(new Date(refused.extensions.resetsAt).getTime()).toBe(rows[0].next.getTime());
  expect(refused.extensions.retryAfter).toBeGreaterThanOrEqual(1);
  expect(refused.extensions.retryAfter).toBeLessThanOrEqual(3600);
  // a replay of a generation already started is not a new one
  expect((await start(owner, org.id, p, 1, "g-0")).status).toBe("failed");
  // the refused one left nothing behind
  const n = await db.owner.query("select count(*)::int as n from app_public.generations where organization_id = $1", [org.id]);
  expect(n.rows[0].n).toBe(5);
  await turnTheHour(org.id);
  expect((await start(owner, org.id, p, 1, "g-6")).status).toBe("running");
});

test("generations per period: counted in the usage counters, reset with the period", async () => {
  const { owner, org } = await orgOnPlan("q-gen-period");
  const p = await project(owner, org.id);
  for (let i = 0; i < 4; i++) await fail(owner, (await start(owner, org.id, p, 1, `p-${i}`)).id);
  const refused = await refusal(start(owner, org.id, p, 1, "p-4"));
  expect(refused.code).toBe("QUOTA_EXCEEDED");
  expect(refused.extensions.quota).toBe("generationsPerPeriod");
  expect(refused.extensions.limit).toBe(4);
  const { rows } = await db.owner.query("select period_end from app_public.usage_counters where organization_id = $1", [org.id]);
  expect(new Date(refused.extensions.resetsAt).getTime()).toBe(rows[0].period_end.getTime());
  // a new period (what the rollover job does) starts the count again
  await db.owner.query("update app_public.usage_counters set generations = 0 where organization_id = $1", [org.id]);
  expect((await start(owner, org.id, p, 1, "p-5")).status).toBe("running");
});

test("projects per hour: creations and restores count, deleted ones still count", async () => {
  const { owner, org } = await orgOnPlan("q-proj-hour");
  const create = (name: string) =>
    db.queryAs(owner, "insert into app_public.projects (organization_id, name) values ($1, $2) returning id", [org.id, name]).then((r) => r.rows[0].id);
  const del = (id: string) => db.queryAs(owner, "select app_public.delete_project($1)", [id]);
  const a = await create("a");
  await del(a);
  const b = await create("b");
  await del(b);
  const c = await create("c");
  await db.queryAs(owner, "select app_public.restore_project($1)", [a]); // the 4th
  await del(c);
  const refused = await refusal(create("e"));
  expect(refused.code).toBe("QUOTA_EXCEEDED");
  expect(refused.extensions).toMatchObject({ quota: "projectsCreatedPerHour", limit: 4 });
  expect(await codeOf(db.queryAs(owner, "select app_public.restore_project($1)", [b]))).toBe("QUOTA_EXCEEDED");
  // the live-project limit (2) still speaks first where it applies
  await turnTheHour(org.id);
  await create("f");
  expect(await codeOf(create("g"))).toBe("PROJECT_LIMIT_REACHED");
});

test("stored projects: soft-deleted ones count toward the total", async () => {
  const { owner, org } = await orgOnPlan("q-proj-stored");
  const create = (name: string) =>
    db.queryAs(owner, "insert into app_public.projects (organization_id, name) values ($1, $2) returning id", [org.id, name]).then((r) => r.rows[0].id);
  for (const name of ["a", "b", "c"]) {
    await db.queryAs(owner, "select app_public.delete_project($1)", [await create(name)]);
  }
  const refused = await refusal(create("d"));
  expect(refused).toEqual({ code: "QUOTA_EXCEEDED", extensions: { quota: "storedProjects", limit: 3 } });
  // an operator's SQL (the owner role, acting for no client) is not counted
  await db.owner.query("insert into app_public.projects (organization_id, name) values ($1, 'by the operator')", [org.id]);
});

test("open reservations: at most the plan's number at once; a settled one frees its place", async () => {
  const { owner, org } = await orgOnPlan("q-open");
  const r: { id: string }[] = [];
  for (let i = 0; i < 3; i++) r.push(await reserve(owner, org.id, 1, `open-${i}`));
  const refused = await refusal(reserve(owner, org.id, 1, "open-3"));
  expect(refused).toEqual({ code: "QUOTA_EXCEEDED", extensions: { quota: "openReservations", limit: 3 } });
  // generations reserve too
  const p = await project(owner, org.id);
  expect(await codeOf(start(owner, org.id, p, 1, "gen"))).toBe("QUOTA_EXCEEDED");
  await release(owner, r[0].id);
  expect((await reserve(owner, org.id, 1, "open-4")).status).toBe("open");
});

test("30 concurrent generations and 30 concurrent project creations against hourly quotas of 7: exactly 7 of each", async () => {
  const { owner, org } = await orgOnPlan("q-race");
  const p = await project(owner, org.id); // 1 of the 7 project creations
  const gens = await tally(Array.from({ length: 30 }, (_, i) => start(owner, org.id, p, 1, `race-${i}`)));
  expect(gens).toEqual({ ok: 7, codes: { QUOTA_EXCEEDED: 23 } });
  const projects = await tally(
    Array.from({ length: 30 }, (_, i) => db.queryAs(owner, "insert into app_public.projects (organization_id, name) values ($1, $2)", [org.id, `race ${i}`])),
  );
  expect(projects).toEqual({ ok: 6, codes: { QUOTA_EXCEEDED: 24 } });
  const { rows } = await db.owner.query("select quota, used from app_private.hourly_quota_usage where organization_id = $1 order by quota", [org.id]);
  expect(rows).toEqual([
    { quota: "generationsPerHour", used: 7 },
    { quota: "projectsCreatedPerHour", used: 7 },
  ]);
});

test("the hour window is the UTC clock hour whatever the session's time zone", async () => {
  const client = await db.owner.connect();
  try {
    await client.query("begin");
    await client.query("set local time zone 'Asia/Kolkata'");
    const { rows } = await client.query("select app_hidden.quota_hour_start('2026-03-05 10:47:12+00') = '2026-03-05 10:00:00+00' as utc_hour");
    expect(rows[0].utc_hour).toBe(true);
  } finally {
    await client.query("rollback");
    client.release();
  }
});

test("the shipped plans carry quotas", async () => {
  const { rows } = await db.owner.query(
    `select id, max_generations_per_hour, max_generations_per_period, max_projects_created_per_hour, max_stored_projects, max_open_reservations
     from app_public.plans where id in ('free', 'pro', 'enterprise') order by monthly_credits`,
  );
  expect(rows).toEqual([
    { id: "free", max_generations_per_hour: 100, max_generations_per_period: 2000, max_projects_created_per_hour: 10, max_stored_projects: 100, max_open_reservations: 1000 },
    { id: "pro", max_generations_per_hour: 2000, max_generations_per_period: 200000, max_projects_created_per_hour: 100, max_stored_projects: 2000, max_open_reservations: 5000 },
    { id: "enterprise", max_generations_per_hour: 20000, max_generations_per_period: null, max_projects_created_per_hour: 1000, max_stored_projects: 20000, max_open_reservations: 20000 },
  ]);
});

