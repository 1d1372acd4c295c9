// docs/configuration.md lists every environment variable core/ reads (each in a table row of its
// own, with its default), and lists none that nothing reads any more.

import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { ATTEMPT_LIMIT_DEFAULTS } from "../../core/config.ts";
import { projectRoot } from "../../core/paths.ts";

const DOC = "docs/configuration.md";

/** Read in core/ but not configuration: the system's own. */
const NOT_CONFIGURATION = new Set(["PATH"]);

function read(file: string): string {
  return readFileSync(path.join(projectRoot, file), "utf8");
}

/** Variables core/*.ts reads: read(env, "X"), integer(env, "X", …), process.env.X, RATE_LIMIT_*. */
function variablesRead(): Map<string, string> {
  const found = new Map<string, string>();
  for (const name of readdirSync(path.join(projectRoot, "core")).filter((n) => n.endsWith(".ts"))) {
    const source = read(`core/${name}`);
    for (const match of source.matchAll(/\(\s*env\s*,\s*"([A-Z][A-Z0-9_]+)"|process\.env\.([A-Z][A-Z0-9_]+)/g)) {
      const variable = match[1] ?? match[2];
      if (!NOT_CONFIGURATION.has(variable)) found.set(variable, `core/${name}`);
    }
  }
  for (const [action, scopes] of Object.entries(ATTEMPT_LIMIT_DEFAULTS)) {
    for (const scope of Object.keys(scopes)) found.set(`RATE_LIMIT_${action.toUpperCase()}_${scope.toUpperCase()}`, "core/config.ts (ATTEMPT_LIMIT_DEFAULTS)");
  }
  return found;
}

function documented(): { name: string; line: number }[] {
  return read(DOC)
    .split("\n")
    .map((line, index) => ({ match: /^\|\s*`([A-Z][A-Z0-9_]+)`\s*\|/.exec(line), line: index + 1 }))
    .filter(({ match }) => match !== null)
    .map(({ match, line }) => ({ name: match![1], line }));
}

test(`every variable core/ reads has a row in ${DOC}`, () => {
  const rows = new Set(documented().map((r) => r.name));
  const read = variablesRead();
  expect(read.size).toBeGreaterThan(60);
  const missing = [...read].filter(([name]) => !rows.has(name)).map(([name, file]) => `${name} (read in ${file}): add a row | \`${name}\` | <default> | <meaning> | to the table of its area in ${DOC}`);
  expect(missing).toEqual([]);
});

test(`every variable in ${DOC} is still read somewhere`, () => {
  const sources = ["core", "db", "server", "workers", "scripts", "test", "bench"]
    .flatMap((folder) =>
      readdirSync(path.join(projectRoot, folder), { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile() && /\.(ts|js)$/.test(e.name))
        .map((e) => readFileSync(path.join(e.parentPath, e.name), "utf8")),
    )
    .join("\n");
  const attemptLimits = [...variablesRead().keys()].filter((name) => name.startsWith("RATE_LIMIT_"));
  const stale = documented()
    .filter(({ name }) => !sources.includes(name) && !attemptLimits.includes(name))
    .map(({ name, line }) => `${DOC}:${line}: ${name} is read nowhere; remove its row`);
  expect(stale).toEqual([]);
});
