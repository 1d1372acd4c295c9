// `npm run new:table` (scripts/new-table.ts): what it writes applies to a migrated database the
// way start-up applies it, passes the catalog lints, and its own generated test passes as written.
// The generated test runs here, in this file: it is written beside test/helpers (under a
// temporary folder of test/, named so that jest does not collect it) and required while jest
// collects this file, against a template database that holds the generated table. The whole
// checkout run (the generator, then `npm test`) is test/e2e/tutorial.test.ts.

import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { projectRoot } from "../../core/paths.ts";
import { readSchemaFiles } from "../../db/apply-schema.ts";
import { ROLES } from "../../db/roles.ts";
import { withCredentials } from "../../db/urls.ts";
import { generateTable, parseColumn, pickNumbers, singularOf } from "../../scripts/new-table-lib.ts";
import { createTestDatabase } from "../helpers/db.ts";
import { twoTenants } from "../helpers/fixtures.ts";

// A table with a project and two columns of its own; the generator picks a free domain number.
const TABLE = "gadgets";
const { domain, migrationNumber } = pickNumbers(projectRoot, TABLE);
const files = generateTable({
  table: TABLE,
  singular: singularOf(TABLE),
  project: true,
  columns: [parseColumn("title:text!"), parseColumn("body:jsonb")],
  domain,
  migrationNumber,
});
const fileText = (suffix: string) => files.find((f) => f.path.endsWith(suffix))!.text;

// The generated test, two folders below test/ like test/db/<domain>/, so its imports resolve.
const scratch = mkdtempSync(path.join(projectRoot, "test", ".generated-"));
const generatedTest = path.join(scratch, domain, `${TABLE}.generated-test.ts`);
mkdirSync(path.dirname(generatedTest), { recursive: true });
writeFileSync(generatedTest, fileText(`${TABLE}.test.ts`));

let template: string | null = null;
let previousTemplate: string | undefined;

/** The generated SQL, applied as start-up would: migration, then every function and policy file. */
function schemaWithGenerated(): string {
  const existing = readSchemaFiles();
  const functions = existing.filter((f) => f.name.startsWith("functions/")).map((f) => f.sql);
  const policies = existing.filter((f) => f.name.startsWith("policies/")).map((f) => f.sql);
  return [...functions, fileText(`functions/${domain}/${TABLE}.sql`), ...policies, fileText(`policies/${domain}.sql`)].join("\n");
}

beforeAll(async () => {
  // A template like the run's own, plus the generated table; createTestDatabase() clones it.
  const rootUrl = process.env.TB_TEST_ROOT_URL!;
  previousTemplate = process.env.TB_TEST_TEMPLATE!;
  template = `${previousTemplate}_gen`.slice(0, 60);
  const root = new pg.Client({ connectionString: rootUrl });
  await root.connect();
  try {
    await root.query(`create database ${template} template ${previousTemplate} owner ${ROLES.owner}`);
    await root.query(`grant connect on database ${template} to ${ROLES.authenticator}`);
  } finally {
    await root.end();
  }
  const owner = new pg.Client({ connectionString: withCredentials(rootUrl, ROLES.owner, process.env.TB_TEST_OWNER_PASSWORD!, template) });
  await owner.connect();
  try {
    const migration = fileText(`${migrationNumber}-${TABLE}-${TABLE}.sql`);
    await owner.query(migration);
    await owner.query(migration); // re-runnable, as db:watch and the tests run it again
    await owner.query(`begin; ${schemaWithGenerated()}; commit;`);
    await owner.query(`begin; ${schemaWithGenerated()}; commit;`); // and so are the files
  } finally {
    await owner.end();
  }
  const root2 = new pg.Client({ connectionString: rootUrl });
  await root2.connect();
  try {
    await root2.query(`alter database ${template} with is_template true allow_connections false`);
  } finally {
    await root2.end();
  }
  process.env.TB_TEST_TEMPLATE = template;
});

afterAll(async () => {
  rmSync(scratch, { recursive: true, force: true });
  if (previousTemplate) process.env.TB_TEST_TEMPLATE = previousTemplate;
  if (!template) return;
  const root = new pg.Client({ connectionString: process.env.TB_TEST_ROOT_URL! });
  await root.connect();
  try {
    await root.query(`alter database ${template} with is_template false`);
    await root.query(`drop database if exists ${template} with (force)`);
  } finally {
    await root.end();
  }
});

describe(`the generated test/db/${domain}/${TABLE}.test.ts, as written`, () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require(generatedTest);
});

test("the generated files pass the catalog lints and take their fixture row", async () => {
  const db = await createTestDatabase();
  try {
    const { rows } = await db.owner.query(
      `select c.relrowsecurity and c.relforcerowsecurity as secured,
              has_table_privilege('app_user', c.oid, 'DELETE') as can_delete,
              (select array_agg(t.tgname::text order by t.tgname) from pg_trigger t where t.tgrelid = c.oid and not t.tgisinternal) as triggers,
              (select array_agg(a.attname::text order by a.attnum) from pg_index x join pg_attribute a on a.attrelid = c.oid and a.attnum = x.indkey[0]
                where x.indrelid = c.oid and (x.indisprimary or x.indisunique)) as key_leads
         from pg_class c where c.oid = $1::regclass`,
      [`app_public.${TABLE}`],
    );
    expect(rows[0]).toEqual({ secured: true, can_delete: false, triggers: ["_005_authorize", "_100_audit_columns"], key_leads: ["organization_id"] });
    const { a } = await twoTenants(db);
    await db.owner.query(fileText(`${TABLE}.fixture.sql`), [a.org.id, a.member.userId]);
    expect((await db.owner.query(`select title, created_by from app_public.${TABLE}`)).rows).toEqual([{ title: "Example title", created_by: a.member.userId }]);
  } finally {
    await db.drop();
  }
});

test("the command line writes the same files, refuses to overwrite, and its test typechecks", () => {
  const root = mkdtempSync(path.join(os.tmpdir(), "tb-new-table-"));
  try {
    const run = (...args: string[]) =>
      spawnSync(process.execPath, [path.join(projectRoot, "scripts/new-table.ts"), ...args, "--root", root, "--no-export"], { encoding: "utf8" });
    const first = run("documents", "--project");
    expect(first.stderr).toBe("");
    expect(first.status).toBe(0);
    const written = [...first.stdout.matchAll(/^wrote (.+)$/gm)].map((m) => m[1]);
    expect(written).toEqual([
      "db/migrations/current/700-documents-documents.sql",
      "db/functions/700-documents/documents.sql",
      "db/policies/700-documents.sql",
      "test/db/700-documents/documents.test.ts",
      "test/db/700-documents/documents.fixture.sql",
    ]);
    expect(readFileSync(path.join(root, "db/policies/700-documents.sql"), "utf8")).toContain("grant execute on function app_public.delete_document(uuid) to app_user;");
    // a second table: the next domain, and the same name again is refused
    expect(run("notes", "--column", "title:text!").stdout).toContain("wrote db/functions/710-notes/notes.sql");
    const again = run("documents");
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/a domain named documents exists already/);
    expect(run("things", "--column", "id:uuid").stderr).toMatch(/structural column/);

    // the generated tests typecheck against the real helpers (copied beside them, then removed)
    const dir = mkdtempSync(path.join(projectRoot, "test", ".generated-"));
    try {
      const tests = ["700-documents/documents.test.ts", "710-notes/notes.test.ts"].map((f) => {
        const target = path.join(dir, f.replace(".test.ts", ".generated-test.ts"));
        mkdirSync(path.dirname(target), { recursive: true });
        writeFileSync(target, readFileSync(path.join(root, "test/db", f), "utf8"));
        return target;
      });
      const tsconfig = path.join(dir, "tsconfig.json");
      writeFileSync(tsconfig, JSON.stringify({ extends: path.join(projectRoot, "tsconfig.json"), include: [], files: tests }));
      const tsc = spawnSync(process.execPath, [path.join(projectRoot, "node_modules/typescript/bin/tsc"), "--noEmit", "-p", tsconfig], { encoding: "utf8" });
      expect(tsc.stdout + tsc.stderr).toBe("");
      expect(tsc.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
