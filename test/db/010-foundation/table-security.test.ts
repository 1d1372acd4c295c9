// secure_table (db/functions/010-foundation/table-security.sql), which every file in db/policies
// starts from: RLS enabled and forced, every privilege of the app roles and every policy gone,
// and the owner's one policy back, however the table was left before.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createUser } from "../../helpers/fixtures.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

async function state(table: string) {
  const { rows } = await db.owner.query(
    `select c.relrowsecurity as rls, c.relforcerowsecurity as forced,
            (select coalesce(array_agg(p.polname || ':' || array_to_string(array(select pg_get_userbyid(r) from unnest(p.polroles) r), ',') order by p.polname), '{}')
             from pg_policy p where p.polrelid = c.oid) as policies,
            (select coalesce(array_agg(distinct g.grantee::text order by g.grantee::text), '{}')
             from information_schema.role_table_grants g
             where g.table_schema = 'app_public' and g.table_name = c.relname and g.grantee <> 'app_owner') as grantees
     from pg_class c where c.oid = $1::regclass`,
    [table],
  );
  return rows[0];
}

test("a wide-open table ends up closed to every app role, with only the owner's policy", async () => {
  await db.owner.query("create table app_public.scratch_open (id int primary key, note text)");
  await db.owner.query("insert into app_public.scratch_open values (1, 'secret')");
  await db.owner.query("grant all on app_public.scratch_open to public, app_anonymous, app_user, app_authenticator");
  await db.owner.query("alter table app_public.scratch_open enable row level security");
  await db.owner.query("create policy everyone on app_public.scratch_open for all to public using (true) with check (true)");
  await db.owner.query("create policy users on app_public.scratch_open for select to app_user using (true)");
  const user = await createUser(db);
  expect((await db.queryAs(user, "select note from app_public.scratch_open")).rows).toEqual([{ note: "secret" }]);

  await db.owner.query("select app_private.secure_table('app_public.scratch_open')");
  expect(await state("app_public.scratch_open")).toEqual({ rls: true, forced: true, policies: ["owner_all:app_owner"], grantees: [] });
  for (const actor of [user, null]) {
    await expect(db.queryAs(actor, "select * from app_public.scratch_open")).rejects.toMatchObject({ code: "42501" });
    await expect(db.queryAs(actor, "insert into app_public.scratch_open values (2, 'x')")).rejects.toMatchObject({ code: "42501" });
  }
  // the owner (migrations, jobs, SECURITY DEFINER functions) still reads and writes under forced RLS
  await db.owner.query("insert into app_public.scratch_open values (2, 'mine')");
  expect((await db.owner.query("select count(*)::int as n from app_public.scratch_open")).rows[0].n).toBe(2);
});

test("running it again changes nothing; a policy file then grants what it means to", async () => {
  await db.owner.query("create table app_public.scratch_twice (id int primary key)");
  await db.owner.query("select app_private.secure_table('app_public.scratch_twice')");
  const once = await state("app_public.scratch_twice");
  await db.owner.query("select app_private.secure_table('app_public.scratch_twice')");
  expect(await state("app_public.scratch_twice")).toEqual(once);
  expect(once).toEqual({ rls: true, forced: true, policies: ["owner_all:app_owner"], grantees: [] });
  // what a policy file does next: grant, then a policy; secure_table again takes both away
  await db.owner.query("grant select on app_public.scratch_twice to app_user");
  await db.owner.query("create policy read_all on app_public.scratch_twice for select to app_user using (true)");
  expect((await state("app_public.scratch_twice")).policies).toEqual(["owner_all:app_owner", "read_all:app_user"]);
  await db.owner.query("select app_private.secure_table('app_public.scratch_twice')");
  expect(await state("app_public.scratch_twice")).toEqual(once);
});

test("app roles cannot call it", async () => {
  const user = await createUser(db);
  await expect(db.queryAs(user, "select app_private.secure_table('app_public.users')")).rejects.toMatchObject({ code: "42501" });
});
