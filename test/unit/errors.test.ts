// What reaches a client from each kind of database error (server/errors.ts), and what the log
// keeps of a masked one.

import { GraphQLError } from "postgraphile/graphql";
import { SafeError } from "postgraphile/grafast";
import { codeForCaller, codeRequestErrors, maskError } from "../../server/errors.ts";
import { createLogger } from "../../core/logger.ts";

const lines: string[] = [];
const logger = createLogger({ level: "info", stream: { write: (line: string) => void lines.push(line) } });
beforeEach(() => {
  lines.length = 0;
});

function fromPg(fields: Record<string, unknown>): GraphQLError {
  const original = Object.assign(new Error(String(fields.message ?? "pg error")), fields);
  return new GraphQLError("wrapped", { originalError: original, path: ["someField"] });
}

test("a business error passes through with its code", () => {
  const masked = maskError(fromPg({ code: "TB000", detail: "INSUFFICIENT_CREDITS", message: "Not enough credits." }), logger);
  expect(masked.message).toBe("Not enough credits.");
  expect(masked.extensions).toEqual({ code: "INSUFFICIENT_CREDITS" });
  expect(masked.path).toEqual(["someField"]);
});

test("a malformed value is INVALID_INPUT, without PostgreSQL's text", () => {
  const masked = maskError(fromPg({ code: "22P02", message: 'invalid input syntax for type numeric: "abc"' }), logger);
  expect(masked.extensions).toEqual({ code: "INVALID_INPUT" });
  expect(masked.message).not.toMatch(/numeric|syntax|abc/);
});

test("a CHECK constraint is INVALID_INPUT naming the rule, not the value", () => {
  const masked = maskError(
    fromPg({ code: "23514", constraint: "users_name_check", message: 'new row for relation "users" violates check constraint "users_name_check"' }),
    logger,
  );
  expect(masked.extensions).toEqual({ code: "INVALID_INPUT" });
  expect(masked.message).toBe("A value breaks the rule users_name_check.");
});

test("grafast's errors meant for the client get a code", () => {
  const cursor = new GraphQLError("x", { originalError: new SafeError("Invalid cursor, please enter a cursor from a previous request, or null.") });
  expect(maskError(cursor, logger).extensions).toEqual({ code: "INVALID_CURSOR" });
  const empty = new GraphQLError("x", { originalError: new SafeError("Attempted to update a record, but no new values were specified.") });
  expect(maskError(empty, logger).extensions).toEqual({ code: "EMPTY_PATCH" });
  const variable = new GraphQLError('Variable "$id" got invalid value "x"; Invalid UUID');
  expect(maskError(variable, logger).extensions).toEqual({ code: "INVALID_VARIABLES" });
});

test.each([
  ["22012", "division by zero"],
  ["42501", "permission denied for table users"],
  ["42P01", 'relation "app_public.nope" does not exist'],
  ["23505", 'duplicate key value violates unique constraint "users_email_key"'],
  ["TB000", "a TB000 without a well-formed code in DETAIL"],
])("%s is masked: no SQL text reaches the client; one JSON line reaches the log", (code, message) => {
  const masked = maskError(fromPg({ code, message, detail: "not a code" }), logger);
  expect(masked.message).toMatch(/^An error occurred \(logged with hash: '[A-Za-z0-9_-]+', id: '[0-9A-F]+'\)$/);
  expect(JSON.stringify(masked.toJSON())).not.toContain(message);
  expect(masked.extensions).toEqual({ code: "INTERNAL", errorId: expect.any(String) });
  expect(lines).toHaveLength(1);
  const entry = JSON.parse(lines[0]);
  expect(entry).toMatchObject({ msg: "masked error", errorId: masked.extensions.errorId, failure: { sqlstate: code, message } });
  expect(lines[0]).not.toContain("\\n    at "); // no stack trace
});

test("a database that is down or restarting is DATABASE_UNAVAILABLE, not a masked bug", () => {
  for (const fields of [{ code: "57P03", message: "the database system is shutting down" }, { code: "08006", message: "connection failure" }, { message: "Client has encountered a connection error and is not queryable" }]) {
    const answered = maskError(fromPg(fields), logger);
    expect(answered.extensions).toEqual({ code: "DATABASE_UNAVAILABLE" });
    expect(answered.message).toBe("The database is unavailable right now; try again shortly.");
  }
  expect(lines.map((line) => JSON.parse(line).msg)).toEqual(["database unavailable", "database unavailable", "database unavailable"]);
});

test("a missing privilege is NOT_AUTHENTICATED for an anonymous caller, masked for a signed-in one", () => {
  const denied = fromPg({ code: "42501", message: "permission denied for table organizations" });
  expect(codeForCaller(denied, "app_anonymous").extensions).toEqual({ code: "NOT_AUTHENTICATED" });
  expect(codeForCaller(denied, "app_user")).toBe(denied);
  const policy = fromPg({ code: "42501", message: 'new row violates row-level security policy for table "projects"' });
  expect(codeForCaller(policy, "app_user").extensions).toEqual({ code: "FORBIDDEN" });
});

test("errors answered before execution get codes", () => {
  const body = {
    errors: [
      { message: "Syntax Error: Expected Name, found <EOF>." },
      { message: 'Cannot query field "nope" on type "Query".' },
      { message: 'Variable "$note" is never used in operation "A".' },
      { message: "Maximum introspection depth exceeded" },
      { message: "Too much data", extensions: { statusCode: 413 } },
      { message: "Already coded", extensions: { code: "QUERY_TOO_DEEP" } },
    ],
  };
  expect(codeRequestErrors(body, 400)).toBe(true);
  expect(body.errors.map((e: any) => e.extensions.code)).toEqual([
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
    "INTROSPECTION_TOO_DEEP",
    "REQUEST_TOO_LARGE",
    "QUERY_TOO_DEEP",
  ]);
});
