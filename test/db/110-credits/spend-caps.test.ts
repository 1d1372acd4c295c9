// Spend caps, the admin's side (db/functions/110-credits/spend-caps.sql): admins set and remove
// them, members read them and what they used, another organization sees nothing, amounts and
// targets are validated, an organization has at most 50, a revoked key's caps go with it, and the
// periods are UTC days, ISO weeks and calendar months.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createUser, twoTenants } from "../../helpers/fixtures.ts";
import { codeOf, UNKNOWN } from "../../helpers/codes.ts";
import { createApiKey, queryAsApiKey, setPlan } from "../../helpers/team.ts";
import { generationHelpers } from "../../helpers/generations.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const { project } = generationHelpers(() => db);

type Actor = { userId: string | null };
const setCap = (as: Actor, org: string, period: string, max: unknown, projectId: string | null = null, apiKeyId: string | null = null, perReservation: unknown = null) =>
  db.queryAs(as, "select * from app_public.set_spend_cap($1, $2, $3, $4, $5, $6)", [org, period, max, projectId, apiKeyId, perReservation]).then((r) => r.rows[0]);
const removeCap = (as: Actor, id: string) => db.queryAs(as, "select * from app_public.remove_spend_cap($1)", [id]).then((r) => r.rows[0]);
const caps = (as: Actor, org: string) =>
  db.queryAs(as,
    `select c.id, c.scope::text, c.period::text, c.max_credits::int, c.max_per_reservation::int,
            app_public.credit_spend_caps_spent(c)::int as spent
     from app_public.credit_spend_caps c where c.organization_id = $1 order by c.id`, [org]).then((r) => r.rows);

test("admins and owners set and remove caps; members read them (FORBIDDEN to change); other tenants see nothing (NOT_FOUND)", async () => {
  const { a, b } = await twoTenants(db);
  const cap = await setCap(a.admin, a.org.id, "day", "1000", null, null, "100");
  expect(cap).toMatchObject({ scope: "organization", period: "day", max_credits: "1000", max_per_reservation: "100", project_id: null, api_key_id: null });
  const byOwner = await setCap(a.owner, a.org.id, "month", 20000);
  // setting the same target and period again changes that cap
  const changed = await setCap(a.owner, a.org.id, "day", 2000);
  expect(changed.id).toBe(cap.id);
  expect(changed.max_per_reservation).toBeNull();
  expect(await caps(a.member, a.org.id)).toEqual([
    { id: cap.id, scope: "organization", period: "day", max_credits: 2000, max_per_reservation: null, spent: 0 },
    { id: byOwner.id, scope: "organization", period: "month", max_credits: 20000, max_per_reservation: null, spent: 0 },
  ]);

  expect(await codeOf(setCap(a.member, a.org.id, "week", 10))).toBe("FORBIDDEN");
  expect(await codeOf(removeCap(a.member, cap.id))).toBe("FORBIDDEN");
  // the other organization: cannot read, set, or remove (its existence is not disclosed)
  expect(await caps(b.owner, a.org.id)).toEqual([]);
  expect(await codeOf(setCap(b.owner, a.org.id, "week", 10))).toBe("NOT_FOUND");
  expect(await codeOf(removeCap(b.owner, cap.id))).toBe("NOT_FOUND");
  expect(await codeOf(removeCap(b.owner, UNKNOWN))).toBe("NOT_FOUND");
  // nor aim a cap at a's project or key from b
  const aProject = await project(a.owner, a.org.id);
  const aKey = await createApiKey(db, a.owner, a.org.id);
  expect(await codeOf(setCap(b.owner, b.org.id, "day", 10, aProject))).toBe("NOT_FOUND");
  expect(await codeOf(setCap(b.owner, b.org.id, "day", 10, null, aKey.id))).toBe("NOT_FOUND");
  // the app role has no direct write on the table
  expect(await codeOf(db.queryAs(a.owner, "update app_public.credit_spend_caps set max_credits = 1"))).toMatch(/^42501/);
  expect(await codeOf(db.queryAs(a.owner, "delete from app_public.credit_spend_caps"))).toMatch(/^42501/);
  expect(await codeOf(db.queryAs(a.owner, "insert into app_public.credit_spend_caps (organization_id, scope, period, max_credits) values ($1, 'organization', 'week', 1)", [a.org.id]))).toMatch(/^42501/);

  const removed = await removeCap(a.admin, cap.id);
  expect(removed.id).toBe(cap.id);
  expect((await caps(a.member, a.org.id)).map((c) => c.id)).toEqual([byOwner.id]);
  expect(await codeOf(removeCap(a.admin, cap.id))).toBe("NOT_FOUND");
});

test("an admin API key may set caps; a member key may only read them", async () => {
  const { a } = await twoTenants(db);
  const adminKey = await createApiKey(db, a.owner, a.org.id, "ops", "admin");
  const memberKey = await createApiKey(db, a.owner, a.org.id, "app", "member");
  const set = "select id from app_public.set_spend_cap($1, 'week', 500)";
  await queryAsApiKey(db, adminKey.id, set, [a.org.id]);
  expect(await codeOf(queryAsApiKey(db, memberKey.id, set, [a.org.id]))).toBe("FORBIDDEN");
  const { rows } = await queryAsApiKey(db, memberKey.id, "select period::text from app_public.credit_spend_caps");
  expect(rows).toEqual([{ period: "week" }]);
});

test("targets and amounts are validated", async () => {
  const { a } = await twoTenants(db);
  const p = await project(a.owner, a.org.id);
  const key = await createApiKey(db, a.owner, a.org.id);
  for (const bad of [0, -5, "1.5", "1000000000001", null]) {
    expect(await codeOf(setCap(a.owner, a.org.id, "day", bad))).toBe("INVALID_AMOUNT");
  }
  expect(await codeOf(setCap(a.owner, a.org.id, "day", 10, null, null, 11))).toBe("INVALID_AMOUNT"); // per reservation > per day
  expect(await codeOf(setCap(a.owner, a.org.id, "day", 10, null, null, 0))).toBe("INVALID_AMOUNT");
  expect(await codeOf(setCap(a.owner, a.org.id, "day", 10, p, key.id))).toBe("INVALID_ARGUMENTS");
  expect(await codeOf(setCap(a.owner, a.org.id, null as any, 10))).toBe("INVALID_ARGUMENTS");
  expect(await codeOf(setCap(a.owner, a.org.id, "year", 10))).toMatch(/^22P02/); // not an enum value (GraphQL refuses it first)
  expect(await codeOf(setCap(a.owner, a.org.id, "day", 10, UNKNOWN))).toBe("NOT_FOUND");
  expect(await codeOf(setCap(a.owner, a.org.id, "day", 10, null, UNKNOWN))).toBe("NOT_FOUND");
  // a deleted project cannot get a cap
  await db.queryAs(a.owner, "select app_public.delete_project($1)", [p]);
  expect(await codeOf(setCap(a.owner, a.org.id, "day", 10, p))).toBe("NOT_FOUND");
  const ok = await setCap(a.owner, a.org.id, "day", 10, null, key.id, 10);
  expect(ok).toMatchObject({ scope: "api_key", api_key_id: key.id, max_per_reservation: "10" });
});

test("an organization has at most 50 caps (SPEND_CAP_LIMIT_REACHED); changing one of them is still allowed", async () => {
  const { a } = await twoTenants(db);
  const periods = ["day", "week", "month"];
  const made: string[] = [];
  const projects: string[] = [];
  await setPlan(db, a.org.id, "enterprise"); // room for 17 projects
  for (let i = 0; i < 17; i++) {
    const { rows } = await db.owner.query("insert into app_public.projects (organization_id, name) values ($1, $2) returning id", [a.org.id, `P${i}`]);
    projects.push(rows[0].id);
  }
  for (let i = 0; i < 50; i++) {
    made.push((await setCap(a.owner, a.org.id, periods[i % 3], 100, i < 48 ? projects[Math.floor(i / 3)] : null)).id);
  }
  expect(await codeOf(setCap(a.owner, a.org.id, "month", 100))).toBe("SPEND_CAP_LIMIT_REACHED");
  expect((await setCap(a.owner, a.org.id, "day", 999)).max_credits).toBe("999"); // exists already: a change
  await removeCap(a.owner, made[0]);
  await setCap(a.owner, a.org.id, "month", 100);
});

test("a revoked API key's caps go with it; a deleted project's too", async () => {
  const { a } = await twoTenants(db);
  const key = await createApiKey(db, a.owner, a.org.id);
  const other = await createApiKey(db, a.owner, a.org.id, "other");
  await setCap(a.owner, a.org.id, "day", 10, null, key.id);
  await setCap(a.owner, a.org.id, "month", 100, null, key.id);
  const kept = await setCap(a.owner, a.org.id, "day", 10, null, other.id);
  await db.queryAs(a.owner, "select app_public.revoke_api_key($1)", [key.id]);
  expect((await caps(a.owner, a.org.id)).map((c) => c.id)).toEqual([kept.id]);
  expect(await codeOf(setCap(a.owner, a.org.id, "day", 10, null, key.id))).toBe("NOT_FOUND");
  // hard deletion of a project (erasure) cascades
  const p = await project(a.owner, a.org.id);
  await setCap(a.owner, a.org.id, "week", 10, p);
  await db.owner.query("delete from app_public.projects where id = $1", [p]);
  expect((await caps(a.owner, a.org.id)).map((c) => c.id)).toEqual([kept.id]);
});

test("periods are the UTC day, the ISO week from Monday and the calendar month, whatever the session's time zone", async () => {
  const client = await db.owner.connect();
  try {
    await client.query("set time zone 'America/New_York'");
    const at = async (period: string, moment: string) =>
      (await client.query(
        `select to_char(app_hidden.spend_cap_window_start($1, $2) at time zone 'UTC', 'YYYY-MM-DD HH24:MI') as s,
                to_char(app_hidden.spend_cap_window_end($1, app_hidden.spend_cap_window_start($1, $2)) at time zone 'UTC', 'YYYY-MM-DD HH24:MI') as e`,
        [period, moment])).rows[0];
    expect(await at("day", "2026-12-31 23:59:59+00")).toEqual({ s: "2026-12-31 00:00", e: "2027-01-01 00:00" });
    expect(await at("day", "2027-01-01 00:00:00+00")).toEqual({ s: "2027-01-01 00:00", e: "2027-01-02 00:00" });
    expect(await at("week", "2026-12-31 23:59:59+00")).toEqual({ s: "2026-12-28 00:00", e: "2027-01-04 00:00" }); // Thursday → Monday
    expect(await at("week", "2027-01-03 23:59:59+00")).toEqual({ s: "2026-12-28 00:00", e: "2027-01-04 00:00" }); // Sunday
    expect(await at("month", "2026-11-30 23:59:59+00")).toEqual({ s: "2026-11-01 00:00", e: "2026-12-01 00:00" });
    expect(await at("month", "2026-12-31 23:59:59+00")).toEqual({ s: "2026-12-01 00:00", e: "2027-01-01 00:00" });
    expect(await at("month", "2027-02-15 12:00:00+00")).toEqual({ s: "2027-02-01 00:00", e: "2027-03-01 00:00" });
    // 2026-12-01 04:30 UTC is still November 30 in New York: UTC decides
    expect(await at("month", "2026-12-01 04:30:00+00")).toEqual({ s: "2026-12-01 00:00", e: "2027-01-01 00:00" });
  } finally {
    client.release();
  }
});

test("a user who is in no organization gets NOT_FOUND; anonymous NOT_AUTHENTICATED", async () => {
  const { a } = await twoTenants(db);
  const stranger = await createUser(db);
  expect(await codeOf(setCap(stranger, a.org.id, "day", 10))).toBe("NOT_FOUND");
  expect(await codeOf(db.queryAs(null, "select app_public.set_spend_cap($1, 'day', 10)", [a.org.id]))).toMatch(/NOT_AUTHENTICATED|^42501/);
});
