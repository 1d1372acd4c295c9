// Lints for the failures that are silent: each rule below was once broken without any test or
// error saying so (issue 20). Catalog-based, so a new table is checked the day it is created.
// The patterns that pass are in docs/CONVENTIONS.md ("A new tenant table"); `npm run new:table`
// writes them.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const APP_ROLES = ["app_user", "app_anonymous"];

/**
 * Tables whose UPDATE is granted with no raising BEFORE UPDATE trigger, each with its reason. A
 * policy is then the whole update rule, and a refused update answers null with no error: fine
 * only where every member may change every row the policies let them reach.
 */
const UPDATE_WITHOUT_RAISING_TRIGGER: Record<string, string> = {
  "app_public.users":
    "a user updates only their own row (the policy's USING is id = the caller); no other user's row is ever an update a client could expect to work",
};

/** Same for DELETE. */
const DELETE_WITHOUT_RAISING_TRIGGER: Record<string, string> = {};

/**
 * Policies allowed a function of ours, by "table.policy: function", each with its reason. Only
 * user-scoped tables (no organization_id: reference tables on Citus, where a helper may read
 * them); a tenant table's policy never needs one.
 */
const POLICY_FUNCTIONS: Record<string, string> = {
  "app_public.users.select_visible: app_hidden.current_user_visible_user_ids()":
    "the users a caller may see (themselves and their organizations' members) is a join no transaction setting holds yet; evaluated once per statement as an InitPlan",
  "app_public.users.update_self: app_public.current_user_id()":
    "an inlinable SQL wrapper of nullif(current_setting('jwt.claims.user_id', true), '')::uuid, evaluated once as an InitPlan; the expression itself is the form for new policies",
  "app_public.user_settings.select_self: app_public.current_user_id()":
    "as users.update_self",
};

/** pg_trigger.tgtype bits (PostgreSQL's trigger.h). */
const TRIGGER_ROW = 1;
const TRIGGER_BEFORE = 2;
const TRIGGER_DELETE = 8;
const TRIGGER_UPDATE = 16;

interface Writable {
  table: string;
  can_update: boolean;
  can_delete: boolean;
  tenant: boolean;
  /** tgtype of each BEFORE ROW trigger whose function can raise (raise_error or RAISE EXCEPTION). */
  raising: number[];
}

async function writableTables(): Promise<Writable[]> {
  const { rows } = await db.owner.query<Writable>(
    `select c.oid::regclass::text as table,
            bool_or(has_any_column_privilege(r.rolname, c.oid, 'UPDATE')) as can_update,
            bool_or(has_table_privilege(r.rolname, c.oid, 'DELETE')) as can_delete,
            exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'organization_id' and not a.attisdropped)
              or c.oid = 'app_public.organizations'::regclass as tenant,
            coalesce((select array_agg(t.tgtype::int)
                        from pg_trigger t join pg_proc p on p.oid = t.tgfoid
                       where t.tgrelid = c.oid and not t.tgisinternal
                         and (t.tgtype::int & ${TRIGGER_ROW + TRIGGER_BEFORE}) = ${TRIGGER_ROW + TRIGGER_BEFORE}
                         and p.proname <> 'tg_audit_columns'
                         and (p.prosrc ~* 'raise_error' or p.prosrc ~* 'raise\\s+exception')), '{}') as raising
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
       cross join pg_roles r
      where n.nspname in ('app_public', 'app_hidden', 'app_private') and c.relkind in ('r', 'p')
        and r.rolname = any ($1)
      group by c.oid`,
    [APP_ROLES],
  );
  return rows;
}

test("(a) an UPDATE or DELETE granted to an app role has a BEFORE trigger that raises (a policy alone fails silently)", async () => {
  const tables = await writableTables();
  expect(tables.filter((t) => t.can_update).length).toBeGreaterThan(2);
  const offenders: string[] = [];
  for (const t of tables) {
    const hasRaising = (event: number) => t.raising.some((type) => (type & event) !== 0);
    if (t.can_update && !hasRaising(TRIGGER_UPDATE) && !(t.table in UPDATE_WITHOUT_RAISING_TRIGGER)) {
      offenders.push(`${t.table}: UPDATE granted, no BEFORE UPDATE trigger that raises`);
    }
    if (t.can_delete && !hasRaising(TRIGGER_DELETE) && !(t.table in DELETE_WITHOUT_RAISING_TRIGGER)) {
      offenders.push(`${t.table}: DELETE granted, no BEFORE DELETE trigger that raises`);
    }
  }
  expect(offenders).toEqual([]);
  // the allow-lists name only tables that still need them
  const stale = [
    ...Object.keys(UPDATE_WITHOUT_RAISING_TRIGGER).filter((name) => !tables.some((t) => t.table === name && t.can_update)),
    ...Object.keys(DELETE_WITHOUT_RAISING_TRIGGER).filter((name) => !tables.some((t) => t.table === name && t.can_delete)),
  ];
  expect(stale).toEqual([]);
});

test("(b) no function of ours in a policy: policies read the transaction settings start_request() made", async () => {
  // Every function call in a policy's USING and WITH CHECK, from the parsed expression (a call
  // in a subquery too). A function of ours there runs per row, or at best once per statement and
  // out of the planner's sight; Citus refuses the ones that query distributed tables.
  const { rows } = await db.owner.query<{ policy: string; fn: string }>(
    `select c.oid::regclass::text || '.' || p.polname as policy, f.oid::regprocedure::text as fn
       from pg_policy p
       join pg_class c on c.oid = p.polrelid
       join pg_namespace cn on cn.oid = c.relnamespace
       cross join lateral regexp_matches(coalesce(p.polqual::text, '') || ' ' || coalesce(p.polwithcheck::text, ''), ':funcid (\\d+)', 'g') m
       join pg_proc f on f.oid = m[1]::oid
       join pg_namespace fn on fn.oid = f.pronamespace
      where cn.nspname in ('app_public', 'app_hidden', 'app_private')
        and fn.nspname in ('app_public', 'app_hidden', 'app_private')
      order by 1, 2`,
  );
  const found = [...new Set(rows.map((r) => `${r.policy}: ${r.fn}`))];
  expect(found.filter((call) => !(call in POLICY_FUNCTIONS))).toEqual([]);
  expect(Object.keys(POLICY_FUNCTIONS).filter((call) => !found.includes(call))).toEqual([]);
  // the lint sees calls at all: the policies do call PostgreSQL's own current_setting()
  const { rows: calls } = await db.owner.query(
    `select count(*)::int as n from pg_policy p
      where coalesce(p.polqual::text, '') ~ ':funcid ${await oidOf("pg_catalog.current_setting(text)")} '`,
  );
  expect(calls[0].n).toBeGreaterThan(10);
});

async function oidOf(signature: string): Promise<number> {
  const { rows } = await db.owner.query("select $1::regprocedure::oid::int as oid", [signature]);
  return rows[0].oid;
}

test("(c) no DELETE grant on a tenant table: PostGraphile would generate a delete that answers an invisible row with a masked error", async () => {
  const tables = await writableTables();
  expect(tables.filter((t) => t.tenant).length).toBeGreaterThan(10);
  // Deleting a tenant row is a function (delete_<thing>(id): NOT_FOUND, FORBIDDEN), never a grant.
  expect(tables.filter((t) => t.tenant && t.can_delete).map((t) => t.table)).toEqual([]);
});

test("(c) the exported schema has no generated delete mutation of a tenant table", async () => {
  // A generated delete takes `nodeId` (deleteXByNodeId) or the primary key and returns a payload
  // with `deleted<Type>Id`; a delete function returns its row. schema.graphql is what clients see.
  const { readFileSync } = await import("node:fs");
  const sdl = readFileSync("schema.graphql", "utf8");
  const generated = [...sdl.matchAll(/^\s+deleted(\w+)Id: ID/gm)].map((m) => m[1]);
  const byNodeId = [...sdl.matchAll(/^\s+(delete\w+ByNodeId)\(/gm)].map((m) => m[1]);
  expect([...generated, ...byNodeId]).toEqual([]);
});

test("the lints catch a table written the silent way (update rule as a policy, delete granted, a helper in a policy)", async () => {
  // Runs last: it changes this file's own database.
  await db.owner.query(`
    create table app_public.lint_probe (
      organization_id uuid not null references app_public.organizations, id uuid not null default app_hidden.uuid_generate_v7(),
      title text, created_by uuid, primary key (organization_id, id));
    select app_private.secure_table('app_public.lint_probe');
    grant select, delete on app_public.lint_probe to app_user;
    grant update (title) on app_public.lint_probe to app_user;
    create policy update_creator on app_public.lint_probe for update to app_user
      using (created_by = app_public.current_user_id());`);
  const probe = (await writableTables()).find((t) => t.table === "app_public.lint_probe")!;
  expect(probe).toMatchObject({ can_update: true, can_delete: true, tenant: true, raising: [] });
  const { rows } = await db.owner.query(
    `select count(*)::int as n from pg_policy p, regexp_matches(p.polqual::text, ':funcid (\\d+)', 'g') m
      where p.polrelid = 'app_public.lint_probe'::regclass and m[1]::oid = 'app_public.current_user_id()'::regprocedure`,
  );
  expect(rows[0].n).toBe(1);
});
