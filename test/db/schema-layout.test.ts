// The layout holds: every function, trigger and view in the app schemas has exactly one current
// text, in db/functions/<domain>/<file>.sql; nothing runs in the database that no file declares;
// migrations written since the layout hold no function, trigger or view; every function file has
// its test file beside it by name; and applying the files twice changes nothing.
// See docs/CONVENTIONS.md.

import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { applySchema, readSchemaFiles } from "../../db/apply-schema.ts";
import { MIGRATIONS_FOLDER } from "../../db/migrate.ts";

/**
 * Functions allowed to live in a migration only: structural ones that a column default or a
 * migration's own data change needs before db/functions is applied. Each with its reason.
 */
const MIGRATION_ONLY_FUNCTIONS: Record<string, string> = {};

/** The last migration written before db/functions existed; later ones hold no routines. */
const LAST_MIGRATION_BEFORE_LAYOUT = 7;

const APP_SCHEMAS = ["app_public", "app_hidden", "app_private"];

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

/** Lower-case, unquoted schema.name, as regproc prints it without the quotes. */
function normalName(name: string): string {
  return name.replace(/"/g, "").toLowerCase();
}

function stripComments(sql: string): string {
  return sql.replace(/--[^\n]*/g, "");
}

interface Declarations {
  functions: Map<string, string[]>;
  triggers: Map<string, string[]>;
  views: Map<string, string[]>;
}

function declarations(): Declarations {
  const found: Declarations = { functions: new Map(), triggers: new Map(), views: new Map() };
  const add = (map: Map<string, string[]>, key: string, file: string) => map.set(key, [...(map.get(key) ?? []), file]);
  for (const file of readSchemaFiles().filter((f) => f.name.startsWith("functions/"))) {
    const sql = stripComments(file.sql);
    for (const m of sql.matchAll(/create\s+or\s+replace\s+(?:function|procedure)\s+([\w."]+)\s*\(/gi)) add(found.functions, normalName(m[1]), file.name);
    for (const m of sql.matchAll(/create\s+or\s+replace\s+trigger\s+(\w+)\s+[\s\S]*?\son\s+([\w."]+)/gi)) {
      add(found.triggers, `${normalName(m[2])}.${m[1].toLowerCase()}`, file.name);
    }
    for (const m of sql.matchAll(/create\s+or\s+replace\s+view\s+([\w."]+)/gi)) add(found.views, normalName(m[1]), file.name);
  }
  return found;
}

test("db/functions declares only with create or replace (so every file can run again)", () => {
  const offenders = readSchemaFiles()
    .filter((f) => f.name.startsWith("functions/"))
    .filter((f) => /create\s+(function|trigger|view|procedure)\s/i.test(stripComments(f.sql)))
    .map((f) => f.name);
  expect(offenders).toEqual([]);
});

test("every function, trigger and view is declared in exactly one file", () => {
  const found = declarations();
  const twice = [...found.functions, ...found.triggers, ...found.views]
    .filter(([, files]) => files.length > 1)
    .map(([name, files]) => `${name}: ${files.join(", ")}`);
  expect(found.functions.size).toBeGreaterThan(100);
  expect(twice).toEqual([]);
});

test("every function in the app schemas is declared in db/functions, with no overloads and no orphans", async () => {
  const { rows } = await db.owner.query<{ name: string; overloads: number }>(
    `select n.nspname || '.' || p.proname as name, count(*)::int as overloads
       from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname = any ($1)
        and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e')
      group by 1 order by 1`,
    [APP_SCHEMAS],
  );
  const declared = declarations().functions;
  const inDatabase = new Set(rows.map((r) => r.name));
  expect(rows.filter((r) => r.overloads > 1).map((r) => r.name)).toEqual([]);
  // Orphans: in the database, in no file (a function retired without its `drop function`).
  expect([...inDatabase].filter((name) => !declared.has(name) && !(name in MIGRATION_ONLY_FUNCTIONS))).toEqual([]);
  // Declared but missing: the file was not applied.
  expect([...declared.keys()].filter((name) => !inDatabase.has(name))).toEqual([]);
});

test("every trigger calling an app function is declared in db/functions, and nothing else", async () => {
  const { rows } = await db.owner.query<{ name: string }>(
    `select c_n.nspname || '.' || c.relname || '.' || t.tgname as name
       from pg_trigger t
       join pg_class c on c.oid = t.tgrelid join pg_namespace c_n on c_n.oid = c.relnamespace
       join pg_proc p on p.oid = t.tgfoid join pg_namespace p_n on p_n.oid = p.pronamespace
      where not t.tgisinternal and p_n.nspname = any ($1)
      order by 1`,
    [APP_SCHEMAS],
  );
  const declared = declarations().triggers;
  const inDatabase = new Set(rows.map((r) => r.name));
  expect(inDatabase.size).toBeGreaterThan(40);
  expect([...inDatabase].filter((name) => !declared.has(name))).toEqual([]);
  expect([...declared.keys()].filter((name) => !inDatabase.has(name))).toEqual([]);
});

test("views in the app schemas are declared in db/functions", async () => {
  const { rows } = await db.owner.query<{ name: string }>(
    `select n.nspname || '.' || c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relkind = 'v' and n.nspname = any ($1)`,
    [APP_SCHEMAS],
  );
  const declared = declarations().views;
  expect(rows.map((r) => r.name).filter((name) => !declared.has(name))).toEqual([]);
  expect([...declared.keys()].filter((name) => !rows.some((r) => r.name === name))).toEqual([]);
});

test("migrations written since the layout hold no function, trigger or view", () => {
  const files: string[] = [];
  for (const sub of ["committed", "current"]) {
    const dir = path.join(MIGRATIONS_FOLDER, sub);
    if (!existsSync(dir)) continue;
    for (const file of readdirSync(dir).filter((f) => f.endsWith(".sql"))) {
      const number = Number(/^(\d+)-/.exec(file)?.[1] ?? Infinity);
      if (sub === "current" || number > LAST_MIGRATION_BEFORE_LAYOUT) files.push(path.join(dir, file));
    }
  }
  const offenders = files.filter((file) =>
    /create\s+(or\s+replace\s+)?(function|trigger|view|procedure)\s/i.test(stripComments(readFileSync(file, "utf8"))),
  );
  expect(offenders.map((file) => path.relative(MIGRATIONS_FOLDER, file))).toEqual([]);
});

test("every db/functions file has its test file, test/db/<domain>/<file>.test.ts", () => {
  const missing = readSchemaFiles()
    .filter((f) => f.name.startsWith("functions/"))
    .map((f) => f.name.replace(/^functions\//, "test/db/").replace(/\.sql$/, ".test.ts"))
    .filter((testFile) => !existsSync(path.join(process.cwd(), testFile)));
  expect(missing).toEqual([]);
});

test("applying db/functions and db/policies again changes nothing in the catalog", async () => {
  const snapshot = async () => {
    const { rows } = await db.owner.query<{ line: string }>(
      `select 'fn ' || p.oid::regprocedure::text || pg_get_functiondef(p.oid) || coalesce(obj_description(p.oid, 'pg_proc'), '')
              || coalesce(p.proacl::text, '') as line
         from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = any ($1)
       union all
       select 'tg ' || pg_get_triggerdef(t.oid) from pg_trigger t join pg_class c on c.oid = t.tgrelid
         join pg_namespace n on n.oid = c.relnamespace where not t.tgisinternal and n.nspname = any ($1)
       union all
       select 'pol ' || schemaname || '.' || tablename || ' ' || policyname || ' ' || cmd || ' '
              || array_to_string(roles, ',') || ' ' || coalesce(qual, '') || ' ' || coalesce(with_check, '')
         from pg_policies where schemaname = any ($1)
       union all
       select 'rel ' || c.oid::regclass::text || ' ' || coalesce(c.relacl::text, '') || ' ' || c.relrowsecurity || c.relforcerowsecurity
         from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = any ($1)
       order by 1`,
      [APP_SCHEMAS],
    );
    return rows.map((r) => r.line);
  };
  const before = await snapshot();
  expect(await applySchema(db.ownerUrl, { force: true })).toBe(true);
  expect(await snapshot()).toEqual(before);
  // And with the hash recorded, a plain apply does nothing at all.
  expect(await applySchema(db.ownerUrl)).toBe(false);
});
