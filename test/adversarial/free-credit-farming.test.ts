// Free credits farmed by cycling organizations (issue 25, A3). Every new organization starts on
// the free plan with its monthly allowance, and a person may own 3 free organizations. Before the
// fix only live ones counted: create -> delete -> create granted an allowance per cycle (381
// cycles: 38,200 credits), and restoreOrganization then brought every deleted one back (8 live
// free organizations). Now deleted organizations that can still be restored count too
// (db/functions/010-foundation/organizations.sql), so whatever a person creates, deletes and
// restores, at most 3 free organizations — and 3 first allowances — exist per restore window.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { createUser } from "../helpers/fixtures.ts";
import { errorCode } from "../helpers/team.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let db: TestDatabase;
let server: TestServer;
beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db);
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

/** Credits granted to every organization this user owns or owned (deleted ones included). */
async function grantedTo(userId: string): Promise<{ organizations: number; live: number; credits: number }> {
  const { rows } = await db.owner.query(
    `select count(distinct o.id)::int as organizations,
            count(distinct o.id) filter (where o.deleted_at is null)::int as live,
            coalesce((select sum(l.amount) from app_public.credit_ledger l
                      join app_public.organization_members m2 on m2.organization_id = l.organization_id
                      where m2.user_id = $1 and m2.role = 'owner' and l.amount > 0), 0)::int as credits
     from app_public.organizations o join app_public.organization_members m on m.organization_id = o.id
     where m.user_id = $1 and m.role = 'owner'`,
    [userId],
  );
  return rows[0];
}

test("40 create-and-delete cycles as the user role: 3 organizations made, 3 allowances, the rest refused", async () => {
  const person = await createUser(db);
  const { rows: plan } = await db.owner.query("select monthly_credits::int as credits from app_public.plans where id = 'free'");
  const codes: Record<string, number> = {};
  for (let i = 0; i < 40; i++) {
    try {
      const { rows } = await db.queryAs(person, "select (app_public.create_organization($1)).id", [`Farm ${i}`]);
      await db.queryAs(person, "select app_public.delete_organization($1)", [rows[0].id]);
    } catch (error) {
      const code = await errorCode(Promise.reject(error));
      codes[code] = (codes[code] ?? 0) + 1;
    }
  }
  expect(codes).toEqual({ ORGANIZATION_LIMIT_REACHED: 37 });
  const granted = await grantedTo(person.userId);
  expect(granted.organizations).toBe(3);
  expect(granted.credits).toBe(3 * plan[0].credits);

  // Restoring all of them gives back the 3 (they were counted all along), no more.
  const { rows: deleted } = await db.queryAs(person, "select id from app_public.deleted_organizations()");
  expect(deleted).toHaveLength(3);
  for (const { id } of deleted) await db.queryAs(person, "select app_public.restore_organization($1)", [id]);
  expect((await grantedTo(person.userId)).live).toBe(3);
  expect(await errorCode(db.queryAs(person, "select app_public.create_organization('One more')"))).toBe("ORGANIZATION_LIMIT_REACHED");
});

test("the reported cycle (create, delete, restore) eight times over GraphQL: never more than 3 live free organizations", async () => {
  const person = await createUser(db);
  const CREATE = `mutation($n: String!) { createOrganization(input: {name: $n}) { organization { id } } }`;
  const DELETE = `mutation($id: UUID!) { deleteOrganization(input: {id: $id}) { organization { id } } }`;
  const RESTORE = `mutation($id: UUID!) { restoreOrganization(input: {id: $id}) { organization { id } } }`;
  const made: string[] = [];
  const refused: string[] = [];
  for (let i = 0; i < 8; i++) {
    const created = await server.graphql(CREATE, { n: `Cycle ${i}` }, person);
    if (created.errors) {
      refused.push(String(created.errors[0].extensions?.code));
      continue;
    }
    const id = created.data.createOrganization.organization.id as string;
    made.push(id);
    expect((await server.graphql(DELETE, { id }, person)).errors).toBeUndefined();
  }
  for (const id of made) expect((await server.graphql(RESTORE, { id }, person)).errors).toBeUndefined();
  expect(made).toHaveLength(3);
  expect(refused).toEqual(Array(5).fill("ORGANIZATION_LIMIT_REACHED"));
  expect((await grantedTo(person.userId)).live).toBe(3);
});

test("a deleted organization stops counting once it can no longer be restored", async () => {
  const person = await createUser(db);
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const { rows } = await db.queryAs(person, "select (app_public.create_organization($1)).id", [`Old ${i}`]);
    ids.push(rows[0].id);
  }
  await db.queryAs(person, "select app_public.delete_organization($1)", [ids[0]]);
  expect(await errorCode(db.queryAs(person, "select app_public.create_organization('Too soon')"))).toBe("ORGANIZATION_LIMIT_REACHED");
  // 31 days later (moved back in the database, not waited for): its place is free again.
  await db.owner.query("update app_public.organizations set deleted_at = now() - interval '31 days' where id = $1", [ids[0]]);
  await db.queryAs(person, "select app_public.create_organization('After the window')");
});
