// Usage counters (db/functions/100-plans/counters.sql): every organization has a counter row,
// kept in step by triggers with its members, projects and API calls, and equal to a recount.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { addMember, createOrganization, createUser, twoTenants } from "../../helpers/fixtures.ts";
import { planHelpers } from "../../helpers/plans.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const { counters, expectCountersExact } = planHelpers(() => db);

test("every organization gets a counter row with the current period; seats are counted", async () => {
  const { a } = await twoTenants(db);
  const c = await counters(a.org.id);
  expect(c.seat_count).toBe(3);
  expect(c.project_count).toBe(0);
  expect(Number(c.api_calls)).toBe(0);
  // the period containing the moment the organization was made (not today: the month may have
  // ended since)
  const { rows } = await db.owner.query(
    "select date_trunc('month', created_at at time zone 'UTC') at time zone 'UTC' as start, created_at from app_public.organizations where id = $1",
    [a.org.id]);
  expect(c.period_start.getTime()).toBe(rows[0].start.getTime());
  expect(c.period_end > rows[0].created_at).toBe(true);
  await db.owner.query("select app_private.count_api_call($1)", [a.org.id]);
  await db.owner.query("select app_private.count_api_call($1)", [a.org.id]);
  expect(Number((await counters(a.org.id)).api_calls)).toBe(2);
  await expectCountersExact();
});

test("counters follow insert, soft delete, restore and hard delete of projects and members", async () => {
  const owner = await createUser(db);
  const org = await createOrganization(db, owner, "Counting");
  await db.owner.query("update app_public.organizations set plan_id = 'pro' where id = $1", [org.id]);
  const ids: string[] = [];
  for (const name of ["One", "Two", "Three"]) {
    const { rows } = await db.queryAs(owner, "insert into app_public.projects (organization_id, name) values ($1, $2) returning id", [org.id, name]);
    ids.push(rows[0].id);
  }
  expect((await counters(org.id)).project_count).toBe(3);
  await db.queryAs(owner, "select app_public.delete_project($1)", [ids[0]]);
  await db.queryAs(owner, "select app_public.delete_project($1)", [ids[0]]); // twice: still one decrement
  expect((await counters(org.id)).project_count).toBe(2);
  await db.queryAs(owner, "select app_public.restore_project($1)", [ids[0]]);
  expect((await counters(org.id)).project_count).toBe(3);
  await db.queryAs(owner, "select app_public.delete_project($1)", [ids[1]]);
  await db.owner.query("delete from app_public.projects where id = any($1)", [[ids[1], ids[2]]]); // one deleted, one live
  expect((await counters(org.id)).project_count).toBe(1);

  const u1 = await createUser(db);
  const u2 = await createUser(db);
  await addMember(db, org.id, u1);
  await addMember(db, org.id, u2, "admin");
  expect((await counters(org.id)).seat_count).toBe(3);
  await db.owner.query("update app_public.organization_members set role = 'member' where user_id = $1", [u2.userId]);
  expect((await counters(org.id)).seat_count).toBe(3);
  await db.owner.query("delete from app_public.organization_members where organization_id = $1 and user_id = $2", [org.id, u1.userId]);
  expect((await counters(org.id)).seat_count).toBe(2);
  await expectCountersExact();
  // deleting the whole organization cascades cleanly
  const client = await db.owner.connect();
  try {
    await client.query("begin");
    await client.query("select set_config('tenantbase.allow_prune', 'on', true)");
    await client.query("delete from app_public.organizations where id = $1", [org.id]);
    await client.query("commit");
  } finally {
    client.release();
  }
  expect(await counters(org.id)).toBeUndefined();
});
