// Rules every table and function must follow, checked against the catalog so that a new table
// that forgets one fails here rather than in production. See DESIGN.md, "Database".

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { createUser, createOrganization } from "../helpers/fixtures.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

async function publicTables(): Promise<string[]> {
  const { rows } = await db.owner.query(
    `select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = 'app_public' and c.relkind in ('r', 'p') order by 1`,
  );
  return rows.map((r) => r.relname);
}

async function tenantTables(): Promise<string[]> {
  const { rows } = await db.owner.query(
    `select c.relname from pg_class c
     join pg_namespace n on n.oid = c.relnamespace
     join pg_attribute a on a.attrelid = c.oid and a.attname = 'organization_id' and not a.attisdropped
     where n.nspname = 'app_public' and c.relkind in ('r', 'p') order by 1`,
  );
  return rows.map((r) => r.relname);
}

test("every app_public table has RLS enabled and forced, and a policy for the app roles", async () => {
  const { rows } = await db.owner.query(
    `select c.relname, c.relrowsecurity, c.relforcerowsecurity,
            (select count(*) from pg_policy p
              where p.polrelid = c.oid and p.polname <> 'owner_all')::int as app_policies
     from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = 'app_public' and c.relkind in ('r', 'p')`,
  );
  expect(rows.length).toBeGreaterThan(0);
  const offenders = rows
    .filter((r) => !r.relrowsecurity || !r.relforcerowsecurity || r.app_policies === 0)
    .map((r) => r.relname);
  expect(offenders).toEqual([]);
});

test("every app_public table has the audit columns, maintained by the audit trigger", async () => {
  const { rows } = await db.owner.query(
    `select c.relname,
       (select array_agg(a.attname::text order by a.attname) from pg_attribute a
         where a.attrelid = c.oid and a.attname in ('created_at', 'updated_at', 'created_by') and not a.attisdropped) as cols,
       exists (select 1 from pg_trigger t join pg_proc p on p.oid = t.tgfoid
               where t.tgrelid = c.oid and p.proname = 'tg_audit_columns') as has_trigger
     from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = 'app_public' and c.relkind in ('r', 'p')`,
  );
  const offenders = rows
    .filter((r) => (r.cols ?? []).length !== 3 || !r.has_trigger)
    .map((r) => `${r.relname}: ${JSON.stringify(r.cols)} trigger=${r.has_trigger}`);
  expect(offenders).toEqual([]);
});

test("tenant tables lead their primary key and unique constraints with organization_id", async () => {
  // Unique indexes that must be global (e.g. an id issued by Stripe) say so in their comment
  // with "global-unique:" and the reason; on Citus they would move to a reference table.
  const { rows } = await db.owner.query(
    `select c.relname as table_name, i.relname as index_name, x.indisprimary,
            (select a.attname from pg_attribute a where a.attrelid = c.oid and a.attnum = x.indkey[0]) as first_column,
            coalesce(obj_description(i.oid, 'pg_class'), '') as comment
     from pg_index x
     join pg_class i on i.oid = x.indexrelid
     join pg_class c on c.oid = x.indrelid
     join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = 'app_public' and (x.indisunique or x.indisprimary)
       and c.relname <> 'organizations'
       and exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'organization_id')`,
  );
  const offenders = rows
    .filter((r) => r.first_column !== "organization_id" && !r.comment.startsWith("global-unique:"))
    .map((r) => `${r.table_name}.${r.index_name} starts with ${r.first_column}`);
  expect(offenders).toEqual([]);
  const tenants = await tenantTables();
  const withPk = new Set(rows.filter((r) => r.indisprimary).map((r) => r.table_name));
  expect(tenants.filter((t) => t !== "organizations" && !withPk.has(t))).toEqual([]);
});

test("foreign keys between tenant tables include organization_id", async () => {
  const { rows } = await db.owner.query(
    `select con.conname, src.relname as from_table, dst.relname as to_table,
            array(select a.attname::text from unnest(con.conkey) k join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k) as columns
     from pg_constraint con
     join pg_class src on src.oid = con.conrelid
     join pg_class dst on dst.oid = con.confrelid
     join pg_namespace n on n.oid = src.relnamespace
     where con.contype = 'f' and n.nspname = 'app_public'
       and dst.relname <> 'organizations'
       and exists (select 1 from pg_attribute a where a.attrelid = src.oid and a.attname = 'organization_id')
       and exists (select 1 from pg_attribute a where a.attrelid = dst.oid and a.attname = 'organization_id')`,
  );
  const offenders = rows
    .filter((r) => !r.columns.includes("organization_id"))
    .map((r) => `${r.from_table}.${r.conname} -> ${r.to_table} (${r.columns})`);
  expect(offenders).toEqual([]);
});

test("every foreign key is served by an index that starts with its columns", async () => {
  const { rows } = await db.owner.query(
    `select n.nspname, src.relname, con.conname,
            exists (
              select 1 from pg_index x
              where x.indrelid = con.conrelid
                and (select array_agg(k order by k) from unnest(con.conkey) k)
                  = (select array_agg(k order by k) from unnest((x.indkey::int2[])[0:cardinality(con.conkey) - 1]) k)
            ) as indexed
     from pg_constraint con
     join pg_class src on src.oid = con.conrelid
     join pg_namespace n on n.oid = src.relnamespace
     where con.contype = 'f' and n.nspname in ('app_public', 'app_private')`,
  );
  expect(rows.length).toBeGreaterThan(0);
  expect(rows.filter((r) => !r.indexed).map((r) => `${r.nspname}.${r.relname}.${r.conname}`)).toEqual([]);
});

test("no application role is superuser or can bypass RLS; the authenticator does not inherit", async () => {
  const { rows } = await db.owner.query(
    `select rolname, rolsuper, rolbypassrls, rolinherit, rolcreaterole, rolcreatedb from pg_roles
     where rolname in ('app_owner', 'app_authenticator', 'app_anonymous', 'app_user') order by 1`,
  );
  expect(rows.map((r) => r.rolname)).toEqual(["app_anonymous", "app_authenticator", "app_owner", "app_user"]);
  for (const role of rows) {
    expect({ role: role.rolname, super: role.rolsuper, bypass: role.rolbypassrls, createrole: role.rolcreaterole, createdb: role.rolcreatedb })
      .toEqual({ role: role.rolname, super: false, bypass: false, createrole: false, createdb: false });
  }
  expect(rows.find((r) => r.rolname === "app_authenticator").rolinherit).toBe(false);
});

test("app roles have no privileges in app_private", async () => {
  const { rows } = await db.owner.query(
    `select r.rolname, has_schema_privilege(r.rolname, 'app_private', 'usage') as usage
     from pg_roles r where r.rolname in ('app_anonymous', 'app_user', 'app_authenticator')`,
  );
  expect(rows.filter((r) => r.usage)).toEqual([]);
});

test("functions state their volatility; SECURITY DEFINER ones pin search_path", async () => {
  const { rows } = await db.owner.query(
    `select n.nspname || '.' || p.proname as name, p.prosecdef, p.proconfig
     from pg_proc p join pg_namespace n on n.oid = p.pronamespace
     where n.nspname in ('app_public', 'app_hidden', 'app_private') and p.prokind = 'f'`,
  );
  const unpinned = rows
    .filter((r) => r.prosecdef && !(r.proconfig ?? []).some((c: string) => c.startsWith("search_path=")))
    .map((r) => r.name);
  expect(unpinned).toEqual([]);
});

test("every tenant policy can use an index on organization_id (no full scan with a filter)", async () => {
  // A member with rows in the table must get an Index Cond on organization_id (or on id for
  // organizations). Sequential scans are switched off so that only a policy that *cannot* use
  // an index shows up as one; the fast `= any ((select …)::uuid[])` form passes, while
  // `in (select set_returning_fn())` or a per-row boolean helper would fail.
  const owner = await createUser(db);
  await createOrganization(db, owner, "Lint Org");
  const tables = await tenantTables();
  expect(tables.length).toBeGreaterThan(0);
  const failures: string[] = [];
  for (const table of [...tables, "organizations"]) {
    const column = table === "organizations" ? "id" : "organization_id";
    const plan = await db.as(owner, async (client) => {
      const { rows: privileges } = await client.query("select has_table_privilege($1, 'select') as ok", [`app_public.${table}`]);
      if (!privileges[0].ok) return null;
      await client.query("set local enable_seqscan = off");
      const { rows } = await client.query(`explain (format json) select * from app_public.${table}`);
      return JSON.stringify(rows[0]["QUERY PLAN"]);
    });
    if (plan === null) continue; // not readable by members at all
    const condition = new RegExp(`"(Index Cond|Recheck Cond)":"[^"]*\\b${column}\\b`);
    if (!condition.test(plan)) failures.push(`${table}: ${plan.slice(0, 300)}`);
  }
  expect(failures).toEqual([]);
});

test("the catalog lists the foundation tables", async () => {
  expect(await publicTables()).toEqual(
    expect.arrayContaining(["audit_events", "organization_members", "organizations", "users"]),
  );
});
