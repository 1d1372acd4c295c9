// What `npm run new:table` writes (scripts/new-table.ts is the command line): a tenant table in
// the project's conventions, as a new domain, in five new files and no edit to any other:
//   db/migrations/current/NNN-<domain>-<table>.sql   the table, its keys and indexes (re-runnable)
//   db/functions/<domain>/<table>.sql                 who may change or delete a row, the delete function
//   db/policies/<domain>.sql                          RLS policies and grants
//   test/db/<domain>/<table>.test.ts                  the rules above, as each role
//   test/db/<domain>/<table>.fixture.sql              one row, for tests that need a row in every table
// The patterns are the ones docs/CONVENTIONS.md describes ("A new tenant table"): an update or
// delete rule is a trigger that raises FORBIDDEN (a policy alone answers a silent null), deleting
// is a function (PostGraphile's generated delete answers a row it cannot see with a masked error),
// and policies compare with the caller's organizations in the transaction settings, with no
// function of ours in them.

import { existsSync, readdirSync } from "node:fs";
import path from "node:path";

export interface Column {
  name: string;
  /** A PostgreSQL type: text, jsonb, integer, bigint, boolean, numeric, timestamptz, date, uuid. */
  type: string;
  notNull: boolean;
}

export interface TableSpec {
  /** Plural snake_case table name, e.g. documents. */
  table: string;
  /** Singular, e.g. document (the GraphQL type and the delete function's name). */
  singular: string;
  /** Adds project_id, a foreign key to app_public.projects that includes organization_id. */
  project: boolean;
  /** Columns members write (insert and update); the structural ones are always there. */
  columns: Column[];
  /** Domain folder name, e.g. 700-documents. */
  domain: string;
  /** The migration's number, e.g. 700. */
  migrationNumber: number;
}

export interface GeneratedFile {
  /** Relative to the project root, with forward slashes. */
  path: string;
  text: string;
}

const NAME = /^[a-z][a-z0-9_]{0,40}$/;
const TYPES = new Set(["text", "jsonb", "integer", "bigint", "boolean", "numeric", "timestamptz", "date", "uuid"]);
const RESERVED_COLUMNS = new Set(["organization_id", "id", "project_id", "created_at", "updated_at", "created_by", "deleted_at"]);

/** documents → document, categories → category, boxes → box, news → news. */
export function singularOf(table: string): string {
  if (/ies$/.test(table)) return table.replace(/ies$/, "y");
  if (/(s|x|z|ch|sh)es$/.test(table)) return table.replace(/es$/, "");
  if (/[^s]s$/.test(table)) return table.replace(/s$/, "");
  return table;
}

/** "title:text!" → title text not null; "body:jsonb" → body jsonb (nullable). */
export function parseColumn(spec: string): Column {
  const match = /^([a-z][a-z0-9_]*):([a-z]+)(!?)$/.exec(spec);
  if (!match) throw new Error(`--column ${spec}: write name:type, or name:type! for a required column (e.g. title:text!)`);
  const [, name, type, bang] = match;
  if (!TYPES.has(type)) throw new Error(`--column ${spec}: type must be one of ${[...TYPES].join(", ")}`);
  if (RESERVED_COLUMNS.has(name)) throw new Error(`--column ${spec}: ${name} is a structural column the generator writes itself`);
  return { name, type, notNull: bang === "!" };
}

function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** The domains in use (db/functions folders, db/policies and test/db files), by number. */
export function usedDomainNumbers(root: string): number[] {
  const numbers = new Set<number>();
  for (const dir of ["db/functions", "db/policies", "test/db"]) {
    const full = path.join(root, dir);
    if (!existsSync(full)) continue;
    for (const entry of readdirSync(full)) {
      const n = /^(\d{3})-/.exec(entry)?.[1];
      if (n) numbers.add(Number(n));
    }
  }
  return [...numbers].sort((a, b) => a - b);
}

/** Numbers of the uncommitted migrations (db/migrations/current/NNN-….sql). */
export function usedMigrationNumbers(root: string): number[] {
  const dir = path.join(root, "db/migrations/current");
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((file) => /^(\d+)-.*\.sql$/.exec(file)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number);
}

/**
 * The next free domain number ≥ 700 (below 700 the project's own domains live) in steps of 10,
 * and the migration's number: the domain's, or the next free one after it.
 */
export function pickNumbers(root: string, domainName: string): { domain: string; migrationNumber: number } {
  const existing = [...new Set(["db/functions", "db/policies", "test/db"].flatMap((dir) => {
    const full = path.join(root, dir);
    return existsSync(full) ? readdirSync(full).filter((e) => e.endsWith(`-${domainName}`) || e === `${domainName}.sql`) : [];
  }))];
  if (existing.length) throw new Error(`a domain named ${domainName} exists already (${existing.join(", ")}); pick another with --domain`);
  const used = new Set(usedDomainNumbers(root));
  let number = 700;
  while (used.has(number)) number += 10;
  if (number > 990) throw new Error("no free domain number between 700 and 990");
  const migrations = new Set(usedMigrationNumbers(root));
  let migrationNumber = number;
  while (migrations.has(migrationNumber)) migrationNumber++;
  return { domain: `${number}-${domainName}`, migrationNumber };
}

/** A literal SQL value of the type, for fixtures and tests. */
function sampleSql(column: Column): string {
  switch (column.type) {
    case "text":
      return `'Example ${column.name.replace(/_/g, " ")}'`;
    case "jsonb":
      return `'{}'::jsonb`;
    case "integer":
    case "bigint":
    case "numeric":
      return "1";
    case "boolean":
      return "true";
    case "timestamptz":
      return "'2026-01-01T00:00:00Z'::timestamptz";
    case "date":
      return "'2026-01-01'::date";
    case "uuid":
      return "'00000000-0000-7000-8000-000000000001'::uuid";
    default:
      throw new Error(`no sample for ${column.type}`);
  }
}

export function generateTable(spec: TableSpec): GeneratedFile[] {
  const { table, singular, domain } = spec;
  if (!NAME.test(table)) throw new Error(`table name ${table}: lower-case letters, digits and _ (plural, e.g. documents)`);
  if (!NAME.test(singular)) throw new Error(`singular name ${singular}: lower-case letters, digits and _`);
  if (singular === table) throw new Error(`the singular of ${table} is the same word: give it with --singular`);
  const domainName = domain.replace(/^\d+-/, "");
  const t = `app_public.${table}`;
  const member = "organization_id = any (current_setting('tenantbase.organization_ids')::uuid[])";
  const writable = [...(spec.project ? ["project_id"] : []), ...spec.columns.map((c) => c.name)];
  const insertable = ["organization_id", ...writable];
  const requiredInsert = [...(spec.project ? ["project_id"] : []), ...spec.columns.filter((c) => c.notNull).map((c) => c.name)];
  const Singular = singular.charAt(0).toUpperCase() + camel(singular).slice(1);

  // ---------------------------------------------------------------------------------------- migration
  const columnLines = [
    "  organization_id uuid not null references app_public.organizations on delete cascade,",
    "  id uuid not null default app_hidden.uuid_generate_v7(),",
    ...(spec.project ? ["  project_id uuid not null,"] : []),
    ...spec.columns.map((c) => `  ${c.name} ${c.type}${c.notNull ? " not null" : ""},`),
    "  created_at timestamptz not null default now(),",
    "  updated_at timestamptz not null default now(),",
    "  created_by uuid,",
    `  primary key (organization_id, id)${spec.project ? "," : ""}`,
    ...(spec.project
      ? [
          `  constraint ${table}_project_fkey foreign key (organization_id, project_id)`,
          "    references app_public.projects (organization_id, id)",
        ]
      : []),
  ];
  const migration = `-- ${table} (domain ${domain}): the table, its keys and its indexes. Written to run again
-- (npm run db:watch and the tests re-run uncommitted migrations): every statement is
-- "if not exists" or replaces what it finds. Who may read and change rows is in
-- db/policies/${domain}.sql, the rules in db/functions/${domain}/${table}.sql.
--
-- Tenant table: organization_id leads the primary key and every foreign key to another tenant
-- table, so a row can never point into another organization.

create table if not exists ${t} (
${columnLines.join("\n")}
);
comment on table ${t} is
  E'@behavior -delete\\nA ${singular.replace(/_/g, " ")} of an organization${spec.project ? "''s project" : ""}. Members read and create them; its creator or an admin changes it or deletes it with delete${Singular}.';

-- Lookups by id alone (mutations take the id); the key leads with the tenant.
create index if not exists ${table}_id_idx on ${t} (id);
-- The hot list: an organization's latest ${table}.
create index if not exists ${table}_organization_created_idx on ${t} (organization_id, created_at desc, id desc);
${spec.project ? `-- A project's ${table} (and the foreign key's index).
create index if not exists ${table}_project_created_idx on ${t} (organization_id, project_id, created_at desc);
` : ""}`;

  // ---------------------------------------------------------------------------------------- rules
  const Noun = singular.replace(/_/g, " ");
  const rules = `-- ${table}: who may change or delete one, and deleting one.
--
-- Members of the organization read and create ${table} (db/policies/${domain}.sql). Only its
-- creator, or an admin or owner of its organization, updates or deletes one. That rule is this
-- trigger, not an UPDATE policy: a policy that hides the row makes a forbidden update answer
-- null with no error, while the trigger answers FORBIDDEN with a stable code. The UPDATE policy
-- lets every member of the organization reach the row, so that the trigger runs.
-- Jobs and the owner role (no request: the settings start_request() makes are absent) are not
-- affected.

create or replace function app_private.tg_${table}_authorize() returns trigger
  language plpgsql volatile
  set search_path = pg_catalog, public
as $$
begin
  if coalesce(current_setting('tenantbase.organization_ids', true), '') = '' then
    return coalesce(new, old);
  end if;
  if tg_op = 'INSERT' then
    -- A caller naming another tenant's (or an unknown) organization gets a clear NOT_FOUND here
    -- rather than the row-level-security violation that would follow.
    if not new.organization_id = any (app_public.current_user_organization_ids()) then
      perform app_hidden.raise_error('NOT_FOUND', 'No such organization.');
    end if;
    return new;
  end if;
  if (old.created_by = app_public.current_user_id()) is not true
     and not old.organization_id = any (app_public.current_user_organization_ids('admin')) then
    perform app_hidden.raise_error('FORBIDDEN', 'Only its creator or an admin can change or delete this ${Noun}.');
  end if;
  return coalesce(new, old);
end;
$$;

-- Deleting goes through this function, not PostGraphile's generated delete (no DELETE grant,
-- @behavior -delete): a caller who cannot see the row gets NOT_FOUND, a member who may not delete
-- it FORBIDDEN (from the trigger above, which runs for this delete too).
create or replace function app_public.delete_${singular}(id uuid) returns ${t}
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_row ${t};
begin
  select * into v_row from ${t} x
  where x.id = delete_${singular}.id
    and x.organization_id = any (app_public.current_user_organization_ids())
  for update;
  if not found then
    perform app_hidden.raise_error('NOT_FOUND', 'No such ${Noun}.');
  end if;
  delete from ${t} x where x.organization_id = v_row.organization_id and x.id = v_row.id;
  return v_row;
end;
$$;
comment on function app_public.delete_${singular}(uuid) is
  E'@resultFieldName ${camel(singular)}\\nDeletes a ${Noun}: its creator, or an admin or owner of its organization (else FORBIDDEN).';

create or replace trigger _005_authorize before insert or update or delete on ${t}
  for each row execute function app_private.tg_${table}_authorize();

-- Audit columns (created_at, created_by, updated_at), as on every table.
create or replace trigger _100_audit_columns before insert or update on ${t}
  for each row execute function app_private.tg_audit_columns();
`;

  // ---------------------------------------------------------------------------------------- policies
  const policies = `-- ${table}: members of the organization read and create them; only the creator or an admin
-- changes or deletes one (the _005_authorize trigger in db/functions/${domain}/${table}.sql
-- answers FORBIDDEN: the UPDATE policy lets members reach the row so that it can). Deleting is
-- app_public.delete_${singular}(id): no DELETE grant, so PostGraphile generates no delete of its own.
-- Policies compare with the caller's organizations, set once per transaction by start_request():
-- no function of ours in a policy (test/db/policy-lint.test.ts).

grant execute on function app_public.delete_${singular}(uuid) to app_user;

select app_private.secure_table('${t}');
grant select on ${t} to app_user;
grant insert (${insertable.join(", ")}) on ${t} to app_user;
${writable.length ? `grant update (${writable.join(", ")}) on ${t} to app_user;\n` : ""}create policy select_member on ${t} for select to app_user
  using (${member});
create policy insert_member on ${t} for insert to app_user
  with check (${member});
create policy update_member on ${t} for update to app_user
  using (${member})
  with check (${member});
`;

  // ---------------------------------------------------------------------------------------- fixture
  const fixtureColumns = ["organization_id", ...(spec.project ? ["project_id"] : []), ...spec.columns.filter((c) => c.notNull).map((c) => c.name), "created_by"];
  const fixtureValues = ["$1::uuid", ...(spec.project ? ["p.id"] : []), ...spec.columns.filter((c) => c.notNull).map(sampleSql), "$2::uuid"];
  const fixture = `-- One row of ${t}, for the tests that need a row in every table (test/workers/backup.test.ts,
-- through fillTableFixtures in test/helpers/fixtures.ts). Runs as app_owner with $1 = an
-- organization's id and $2 = the id of one of its members. Keep it in step with the table: a
-- new required column needs a value here.
${spec.project
    ? `with existing as (select id from app_public.projects where organization_id = $1::uuid order by created_at limit 1),
made as (
  insert into app_public.projects (organization_id, name)
  select $1::uuid, 'Fixture project' where not exists (select 1 from existing)
  returning id
),
p as (select id from existing union all select id from made)
insert into ${t} (${fixtureColumns.join(", ")})
select ${fixtureValues.join(", ")} from p;
`
    : `insert into ${t} (${fixtureColumns.join(", ")})
values (${fixtureValues.join(", ")});
`}`;

  // ---------------------------------------------------------------------------------------- test
  const insertColumns = ["organization_id", ...requiredInsert];
  const insertValues = insertColumns.map((c, i) => {
    if (c === "organization_id" || c === "project_id") return `$${i + 1}`;
    return sampleSql(spec.columns.find((col) => col.name === c)!);
  });
  const insertParams = ["org.id", ...(spec.project ? ["project"] : [])];
  const updateColumn = writable[0];
  const updateTest = updateColumn
    ? `
test("only its creator or an admin updates a ${Noun}; a member gets FORBIDDEN, not a silent nothing", async () => {
  const { a } = await twoTenants(db);
  const byAdmin = await create(a.org, a.admin);
  const byMember = await create(a.org, a.member);
  const update = (user: TestUser, id: string) =>
    db.queryAs(user, "update ${t} set ${updateColumn} = ${updateColumn} where id = $1", [id]);
  expect(await codeOf(update(a.member, byAdmin))).toBe("FORBIDDEN");
  expect((await update(a.member, byMember)).rowCount).toBe(1);
  expect((await update(a.admin, byMember)).rowCount).toBe(1);
  expect((await update(a.owner, byAdmin)).rowCount).toBe(1);
  // who made it cannot be rewritten
  await expect(db.queryAs(a.member, "update ${t} set created_by = $2 where id = $1", [byMember, a.owner.userId])).rejects.toThrow(/permission denied/);
});
`
    : "";

  const testFile = `// ${table} (db/functions/${domain}/${table}.sql, db/policies/${domain}.sql), as each role:
// members read and create; only the creator or an admin updates or deletes (else FORBIDDEN); other
// organizations and anonymous callers see nothing and change nothing.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { twoTenants, type TestOrganization, type TestUser } from "../../helpers/fixtures.ts";
import { codeOf, UNKNOWN } from "../../helpers/codes.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

${spec.project ? `const projects = new Map<string, string>();

/** The organization's project (one per organization, made as the owner role). */
async function projectOf(org: TestOrganization): Promise<string> {
  if (!projects.has(org.id)) {
    const { rows } = await db.owner.query("insert into app_public.projects (organization_id, name) values ($1, 'Documents') returning id", [org.id]);
    projects.set(org.id, rows[0].id);
  }
  return projects.get(org.id)!;
}

` : ""}/** A ${Noun} made by user, as app_user does it through GraphQL; its id. */
async function create(org: TestOrganization, user: TestUser): Promise<string> {
${spec.project ? "  const project = await projectOf(org);\n" : ""}  const { rows } = await db.queryAs(
    user,
    "insert into ${t} (${insertColumns.join(", ")}) values (${insertValues.join(", ")}) returning id",
    [${insertParams.join(", ")}],
  );
  return rows[0].id;
}

test("every member reads and creates ${table}; the creator is recorded", async () => {
  const { a } = await twoTenants(db);
  const id = await create(a.org, a.member);
  for (const user of [a.owner, a.admin, a.member]) {
    const { rows } = await db.queryAs(user, "select id, organization_id, created_by from ${t} where id = $1", [id]);
    expect(rows).toEqual([{ id, organization_id: a.org.id, created_by: a.member.userId }]);
  }
});
${updateTest}
test("only its creator or an admin deletes a ${Noun} (delete_${singular}); nobody deletes it directly", async () => {
  const { a } = await twoTenants(db);
  const byAdmin = await create(a.org, a.admin);
  const byMember = await create(a.org, a.member);
  const remove = (user: TestUser, id: string) => db.queryAs(user, "select id from app_public.delete_${singular}($1)", [id]);
  expect(await codeOf(remove(a.member, byAdmin))).toBe("FORBIDDEN");
  expect(await codeOf(db.queryAs(a.owner, "delete from ${t} where id = $1", [byAdmin]))).toMatch(/^42501: permission denied/);
  expect((await remove(a.member, byMember)).rows).toEqual([{ id: byMember }]);
  expect((await remove(a.owner, byAdmin)).rows).toEqual([{ id: byAdmin }]);
  expect((await db.owner.query("select count(*)::int as n from ${t} where id = any ($1)", [[byAdmin, byMember]])).rows[0].n).toBe(0);
  expect(await codeOf(remove(a.owner, UNKNOWN))).toBe("NOT_FOUND");
});

test("another organization and anonymous callers read nothing and change nothing", async () => {
  const { a, b } = await twoTenants(db);
  const id = await create(a.org, a.member);
  for (const user of [b.owner, b.admin, b.member]) {
    expect((await db.queryAs(user, "select * from ${t} where id = $1", [id])).rows).toEqual([]);
${updateColumn ? `    expect((await db.queryAs(user, "update ${t} set ${updateColumn} = ${updateColumn} where id = $1", [id])).rowCount).toBe(0);\n` : ""}    expect(await codeOf(db.queryAs(user, "select app_public.delete_${singular}($1)", [id]))).toBe("NOT_FOUND");
    expect(await codeOf(create(a.org, user))).toBe("NOT_FOUND");
  }
  expect(await codeOf(db.queryAs(null, "select * from ${t}"))).toMatch(/^42501: permission denied/);
  expect((await db.owner.query("select count(*)::int as n from ${t} where id = $1", [id])).rows[0].n).toBe(1);
});
`;

  return [
    { path: `db/migrations/current/${spec.migrationNumber}-${domainName}-${table}.sql`, text: migration },
    { path: `db/functions/${domain}/${table}.sql`, text: rules },
    { path: `db/policies/${domain}.sql`, text: policies },
    { path: `test/db/${domain}/${table}.test.ts`, text: testFile },
    { path: `test/db/${domain}/${table}.fixture.sql`, text: fixture },
  ];
}
