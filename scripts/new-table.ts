// `npm run new:table -- <table> [--project] [--column name:type[!]]… [--singular s] [--domain d] [--root dir]`
// writes a new tenant table as its own domain (scripts/new-table-lib.ts says what and why), then
// prints what it wrote and what to do next. It writes only new files: it refuses to overwrite.
//
//   npm run new:table -- documents --project
//   npm run new:table -- notes --column title:text! --column body:jsonb
//
// Then `npm test -- test/db/<domain>` passes with no edit; docs/extending.md walks on from there.

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { generateTable, parseColumn, pickNumbers, singularOf, type Column } from "./new-table-lib.ts";

const USAGE = `usage: npm run new:table -- <table> [--project] [--column name:type[!]]... [--singular <s>] [--domain <name>]
  <table>      plural snake_case name, e.g. documents
  --project    each row belongs to a project (project_id, a foreign key that includes organization_id)
  --column     a column members write, e.g. --column title:text! (! = required) --column body:jsonb
  --singular   the singular when it is not the table name without its s (e.g. --singular person)
  --domain     the domain's name (default: the table's); its number is the next free one from 700
  --no-export  do not run \`npm run schema:export\` afterwards (schema.graphql then drifts until you do)`;

function main(argv: string[]): void {
  let table: string | undefined;
  let project = false;
  let singular: string | undefined;
  let domainName: string | undefined;
  let root = process.cwd();
  let exportSchema = true;
  const columns: Column[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === "--project") project = true;
    else if (arg === "--column") columns.push(parseColumn(value()));
    else if (arg === "--singular") singular = value();
    else if (arg === "--domain") domainName = value();
    else if (arg === "--root") root = path.resolve(value());
    else if (arg === "--no-export") exportSchema = false;
    else if (arg === "--help" || arg === "-h") {
      console.log(USAGE);
      return;
    } else if (arg.startsWith("-")) throw new Error(`unknown option ${arg}\n${USAGE}`);
    else if (table === undefined) table = arg;
    else throw new Error(`one table at a time (got ${table} and ${arg})\n${USAGE}`);
  }
  if (!table) throw new Error(USAGE);
  const names = columns.map((c) => c.name);
  const twice = names.filter((n, i) => names.indexOf(n) !== i);
  if (twice.length) throw new Error(`--column ${twice[0]} given twice`);
  const { domain, migrationNumber } = pickNumbers(root, domainName ?? table);
  const files = generateTable({ table, singular: singular ?? singularOf(table), project, columns, domain, migrationNumber });
  const clash = files.filter((f) => existsSync(path.join(root, f.path)));
  if (clash.length) throw new Error(`not overwriting ${clash.map((f) => f.path).join(", ")}`);
  for (const file of files) {
    const full = path.join(root, file.path);
    mkdirSync(path.dirname(full), { recursive: true });
    writeFileSync(full, file.text);
    console.log(`wrote ${file.path}`);
  }
  if (exportSchema) {
    // schema.graphql is committed and a test compares it with the API: export it now, so that
    // `npm test` passes right after the generator.
    const run = spawnSync(process.execPath, ["scripts/export-schema.ts"], { cwd: root, stdio: "inherit" });
    if (run.status !== 0) throw new Error("npm run schema:export failed (see above); the files are written, fix and run it again");
  }
  console.log(`
Next:
  npm test -- test/db/${domain}    the generated rules, as each role
  npm test                              every shared test (cross-tenant, API keys, backup) covers the table
Add your columns to the migration, the grants, the fixture and the test, then npm run schema:export;
docs/extending.md walks through it.`);
}

try {
  main(process.argv.slice(2));
} catch (error) {
  console.error((error as Error).message);
  process.exitCode = 1;
}
