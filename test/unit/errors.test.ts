// What reaches a client from each kind of database error (server/errors.ts).

import { GraphQLError } from "postgraphile/graphql";
import { maskError } from "../../server/errors.ts";

function fromPg(fields: Record<string, unknown>): GraphQLError {
  const original = Object.assign(new Error(String(fields.message ?? "pg error")), fields);
  return new GraphQLError("wrapped", { originalError: original, path: ["someField"] });
}

let consoleError: jest.SpyInstance;
beforeAll(() => {
  // grafserv's default mask logs the masked error; not what these tests are about
  consoleError = jest.spyOn(console, "error").mockImplementation(() => {});
});
afterAll(() => consoleError.mockRestore());

test("a business error passes through with its code", () => {
  const masked = maskError(fromPg({ code: "TB000", detail: "INSUFFICIENT_CREDITS", message: "Not enough credits." }));
  expect(masked.message).toBe("Not enough credits.");
  expect(masked.extensions).toEqual({ code: "INSUFFICIENT_CREDITS" });
  expect(masked.path).toEqual(["someField"]);
});

test("a malformed value is INVALID_INPUT, without PostgreSQL's text", () => {
  const masked = maskError(fromPg({ code: "22P02", message: 'invalid input syntax for type numeric: "abc"' }));
  expect(masked.extensions).toEqual({ code: "INVALID_INPUT" });
  expect(masked.message).not.toMatch(/numeric|syntax|abc/);
});

test.each([
  ["22012", "division by zero"],
  ["42501", "permission denied for table users"],
  ["42P01", 'relation "app_public.nope" does not exist'],
  ["23505", 'duplicate key value violates unique constraint "users_email_key"'],
  ["TB000", "a TB000 without a well-formed code in DETAIL"],
])("%s is masked: no SQL text reaches the client", (code, message) => {
  const masked = maskError(fromPg({ code, message, detail: "not a code" }));
  expect(masked.message).toMatch(/^An error occurred \(logged with hash/);
  expect(JSON.stringify(masked.toJSON())).not.toContain(message);
  expect(masked.extensions?.code).toBeUndefined();
});
