// docs/error-codes.md lists every error code a client can receive, and only those: its table is
// compared, in both directions, with the codes the code raises.
// - SQL: `app_hidden.raise_error('CODE', …)` and `raise_error_with('CODE', …)` in db/functions.
// - TypeScript: every UPPER_SNAKE_CASE string literal in server/ (extensions `code: "X"`, the
//   tables and calls of server/errors.ts, graphql-limits.ts, http-operations.ts, …), except the
//   literals below that are not error codes.
// A failure names each code to add (with the exact row and where it goes) or to remove.

import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { projectRoot } from "../../core/paths.ts";

const DOC = "docs/error-codes.md";

/** UPPER_SNAKE_CASE literals in server/ that are not error codes a client can receive. */
const NOT_ERROR_CODES: Record<string, string> = {
  GET: "HTTP method",
  POST: "HTTP method",
  OPTIONS: "HTTP method",
  HEAD: "HTTP method (server/identity/issuer-fetch.ts)",
  RS256: "the ID token algorithm of organizations' SSO connections (server/identity/sso-routes.ts)",
  HS256: "the JWT algorithm",
  S256: "the PKCE code challenge method (server/identity/)",
  TB000: "the SQLSTATE that carries a business code",
  JSON: "a GraphQL type name",
  SIGINT: "a signal",
  SIGTERM: "a signal",
  SIGKILL: "a signal",
  SIGHUP: "a signal",
  SUBSCRIBED: "a realtime event kind, not an error",
  SUPERUSER: "a PostGraphile adaptor variant",
  GRAPHQL_ERROR: "a metrics label for an error without a code; never sent",
};

function filesUnder(folder: string, extension: string): string[] {
  return readdirSync(path.join(projectRoot, folder), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith(extension))
    .map((entry) => path.relative(projectRoot, path.join(entry.parentPath, entry.name)).split(path.sep).join("/"))
    .sort();
}

/** code -> the files that raise it. */
function raisedCodes(): Map<string, Set<string>> {
  const raised = new Map<string, Set<string>>();
  const add = (code: string, file: string) => raised.set(code, (raised.get(code) ?? new Set()).add(file));
  for (const file of filesUnder("db/functions", ".sql")) {
    const sql = readFileSync(path.join(projectRoot, file), "utf8").replace(/--.*$/gm, "");
    for (const match of sql.matchAll(/raise_error(?:_with)?\s*\(\s*'([A-Z][A-Z0-9_]*)'/g)) add(match[1], file);
  }
  for (const file of filesUnder("server", ".ts")) {
    const source = readFileSync(path.join(projectRoot, file), "utf8");
    for (const match of source.matchAll(/(["'`])([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*)\1/g)) {
      if (match[2].length >= 3 && !(match[2] in NOT_ERROR_CODES)) add(match[2], file);
    }
  }
  return raised;
}

/** The table's rows: one code per row, its first cell. */
function documentedCodes(): { code: string; line: number }[] {
  const text = readFileSync(path.join(projectRoot, DOC), "utf8");
  return text
    .split("\n")
    .map((line, index) => ({ match: /^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|/.exec(line), line: index + 1 }))
    .filter(({ match }) => match !== null)
    .map(({ match, line }) => ({ code: match![1], line }));
}

test("the code collection finds codes of each kind", () => {
  const raised = raisedCodes();
  expect([...raised.get("SEAT_LIMIT_REACHED")!].every((file) => file.startsWith("db/functions/"))).toBe(true);
  expect(raised.has("INTERNAL")).toBe(true); // server/errors.ts
  expect(raised.has("QUERY_TOO_DEEP")).toBe(true); // server/graphql-limits.ts
  expect(raised.has("BILLING_NOT_CONFIGURED")).toBe(true); // server/stripe/plugin.ts
  expect(raised.has("SIGTERM")).toBe(false);
});

test(`${DOC} has one row per code, in alphabetical order`, () => {
  const rows = documentedCodes();
  expect(rows.length).toBeGreaterThan(50);
  const seen = new Set<string>();
  const problems: string[] = [];
  rows.forEach(({ code, line }, index) => {
    if (seen.has(code)) problems.push(`${DOC}:${line}: \`${code}\` has a second row; keep one`);
    seen.add(code);
    if (index > 0 && rows[index - 1].code > code) problems.push(`${DOC}:${line}: \`${code}\` comes after \`${rows[index - 1].code}\`; keep the rows in alphabetical order`);
  });
  expect(problems).toEqual([]);
});

test(`every code raised in db/functions or server/ is in ${DOC}, and every code there is raised`, () => {
  const raised = raisedCodes();
  const rows = documentedCodes();
  const documented = new Set(rows.map((r) => r.code));
  const sorted = [...documented].sort();
  const problems: string[] = [];
  for (const [code, files] of [...raised].sort(([a], [b]) => a.localeCompare(b))) {
    if (documented.has(code)) continue;
    const before = sorted.filter((c) => c < code).pop();
    const place = before ? `after the row of \`${before}\`` : `before the row of \`${sorted[0]}\``;
    problems.push(
      `undocumented: ${code} (raised in ${[...files].join(", ")}). In ${DOC}, table "Every code", ${place}, add:\n` +
        `  | \`${code}\` | <what it means for the client, and what to do> | <where it arises: the operation or rule, and ${[...files][0]}> | <HTTP status if not 200> |\n` +
        `  (if it is not an error code a client can receive, add it to NOT_ERROR_CODES in test/unit/error-codes-doc.test.ts with the reason)`,
    );
  }
  for (const { code, line } of rows) {
    if (raised.has(code)) continue;
    problems.push(
      `stale: ${code} (${DOC}:${line}) is raised nowhere: no raise_error('${code}', …) in db/functions and no "${code}" in server/. ` +
        `Remove its row, or, if it is produced in another way, teach this test to find it.`,
    );
  }
  if (problems.length) throw new Error(`${DOC} does not match the codes the code raises:\n\n${problems.join("\n\n")}`);
});
