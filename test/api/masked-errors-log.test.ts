// A masked error (a bug) is logged as one JSON line through the logger: its id and hash (the
// ones the client sees), the operation name and the error's kind and message, never the request's
// source text or variables (a password typed inline into the query must not reach the log), and
// `npm run logs:check` catches such an inline argument if anything ever logs one.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { createUser } from "../helpers/fixtures.ts";
import { memoryLogger, postGraphQL, startServer, type OpsServer } from "../helpers/operations.ts";
import { tokenFor } from "../helpers/server.ts";
import { findSecrets } from "../../scripts/check-log-secrets.ts";

let db: TestDatabase;
let server: OpsServer;
const { logger, lines } = memoryLogger();
const INLINE_PASSWORD = "inline-hunter2-typed-into-the-query";

beforeAll(async () => {
  db = await createTestDatabase();
  // A bug planted in this database only: a mutation that always fails inside PostgreSQL.
  await db.owner.query(`
    create function app_public.crash_on_purpose(password text, note text) returns int language sql volatile as 'select 1 / 0';
    grant execute on function app_public.crash_on_purpose(text, text) to app_user;
  `);
  server = await startServer(db, { logger });
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

test("one JSON line with the operation name, the error id the client saw, no source and no variables", async () => {
  const user = await createUser(db);
  const response = await postGraphQL(
    server.url,
    {
      query: `mutation CrashWithSecrets($note: String!) {\n  crashOnPurpose(input: {password: "${INLINE_PASSWORD}", note: $note}) { clientMutationId }\n}`,
      variables: { note: "variable-value-that-must-not-be-logged" },
    },
    { authorization: `Bearer ${tokenFor(user)}` },
  );
  const [error] = response.body.errors;
  expect(error.message).toMatch(/^An error occurred \(logged with hash: '.+', id: '.+'\)$/);
  expect(error.extensions).toEqual({ code: "INTERNAL", errorId: expect.any(String) });

  const maskedLines = lines.filter((line) => line.includes('"msg":"masked error"'));
  expect(maskedLines).toHaveLength(1);
  expect(maskedLines[0].trimEnd().split("\n")).toHaveLength(1);
  const entry = JSON.parse(maskedLines[0]);
  expect(entry).toMatchObject({
    level: 50,
    errorId: error.extensions.errorId,
    operation: "CrashWithSecrets",
    path: ["crashOnPurpose"],
    failure: { type: "DatabaseError", sqlstate: "22012", message: "division by zero" },
    requestId: expect.any(String),
  });
  const all = lines.join("");
  expect(all).not.toContain(INLINE_PASSWORD);
  expect(all).not.toContain("variable-value-that-must-not-be-logged");
  expect(all).not.toContain("crashOnPurpose(input");
  expect(findSecrets(all)).toEqual([]);
});

test("logs:check catches inline password: and token: arguments, escaped inside JSON or not", () => {
  const logged = JSON.stringify({ msg: "x", source: 'mutation { authenticate(input: {email: "a@b.c", password: "s3cret-pass"}) { jwtToken } }' });
  expect(findSecrets(logged).map((hit) => hit.name)).toContain("inline password or token argument");
  expect(findSecrets('acceptInvitation(input: {token: "abc123def456"})').map((hit) => hit.name)).toContain("inline password or token argument");
  expect(findSecrets('register(input: {newPassword: "whatever-it-is"})').map((hit) => hit.name)).toContain("inline password or token argument");
  // a variable reference, a redacted key and a field named like one are not secrets
  expect(findSecrets('authenticate(input: {email: $email, password: $password}) { jwtToken }')).toEqual([]);
  expect(findSecrets(JSON.stringify({ password: "[redacted]", token: "[redacted]" }))).toEqual([]);
});
