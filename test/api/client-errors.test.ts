// Every mistake a client developer can make answers with a stable extensions.code and a message
// that says what to do, never with a masked "An error occurred": a missing token on a
// member-only field, bad values, a role that may not, GraphQL syntax and validation, bad
// variables and cursors, an empty patch, bodies over the limit. The table in docs/error-codes.md
// lists the same codes. Sent over real HTTP to a real server.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { twoTenants } from "../helpers/fixtures.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let db: TestDatabase;
let server: TestServer;
let cast: Awaited<ReturnType<typeof twoTenants>>;
let memberKey: string;
beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db);
  cast = await twoTenants(db);
  const key = await server.graphql(
    `mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret } }`,
    { input: { organizationId: cast.a.org.id, name: "member key", role: "member" } },
    cast.a.admin,
  );
  memberKey = key.data.createApiKey.secret;
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

async function post(body: string, headers: Record<string, string>) {
  const response = await fetch(`${server.url}/graphql`, { method: "POST", headers, body });
  return { status: response.status, body: (await response.json()) as any };
}

/** The one error of a response: its code and message. */
function only(response: { errors?: { message: string; extensions?: { code?: string } }[] }) {
  expect(response.errors).toHaveLength(1);
  const [error] = response.errors!;
  return { code: error.extensions?.code, message: error.message };
}

const NOT_AUTHENTICATED = { code: "NOT_AUTHENTICATED", message: "Sign in first: this needs a signed-in user or an organization API key." };

test.each([
  ["organizations", `{ organizations { nodes { id } } }`],
  ["plans", `{ plans { nodes { id } } }`],
  ["createOrganization", `mutation { createOrganization(input: {name: "Anon Org"}) { organization { id } } }`],
  ["logout", `mutation { logout(input: {}) { success } }`],
  ["organizationBySlug", `{ organizationBySlug(slug: "alpha-org") { id } }`],
])("anonymous %s: NOT_AUTHENTICATED", async (_field, query) => {
  expect(only(await server.graphql(query))).toEqual(NOT_AUTHENTICATED);
});

test("anonymous currentUser is null, without an error (the one field whose natural answer is 'nobody')", async () => {
  expect(await server.graphql(`{ currentUser { id } }`)).toEqual({ status: 200, data: { currentUser: null }, errors: undefined });
});

const UPDATE_USER = `mutation($id: UUID!, $name: String!) { updateUser(input: {id: $id, patch: {name: $name}}) { user { name } } }`;

test.each([["x".repeat(101)], [""], ["   "]])("updateUser with name %j: INVALID_NAME, nothing changed", async (name) => {
  const response = await server.graphql(UPDATE_USER, { id: cast.a.member.userId, name }, cast.a.member);
  expect(only(response)).toEqual({ code: "INVALID_NAME", message: "Name must be 1 to 100 characters." });
  const { rows } = await db.owner.query("select name from app_public.users where id = $1", [cast.a.member.userId]);
  expect(rows[0].name).toBe("Alpha Member");
});

test("updateUser with surrounding spaces: stored trimmed", async () => {
  const response = await server.graphql(UPDATE_USER, { id: cast.b.member.userId, name: "  Beta M.  " }, cast.b.member);
  expect(response).toMatchObject({ data: { updateUser: { user: { name: "Beta M." } } }, errors: undefined });
});

test("an empty patch: EMPTY_PATCH", async () => {
  const response = await server.graphql(`mutation($id: UUID!) { updateUser(input: {id: $id, patch: {}}) { user { name } } }`, { id: cast.a.member.userId }, cast.a.member);
  expect(only(response)).toEqual({ code: "EMPTY_PATCH", message: "Attempted to update a record, but no new values were specified." });
});

test("a member-role API key renaming its organization: FORBIDDEN, nothing changed", async () => {
  const response = await server.graphql(
    `mutation($id: UUID!) { updateOrganization(input: {id: $id, patch: {name: "Renamed by a key"}}) { organization { name } } }`,
    { id: cast.a.org.id },
    memberKey,
  );
  expect(only(response)).toEqual({ code: "FORBIDDEN", message: "Your role may not make this change in this organization." });
  const { rows } = await db.owner.query("select name from app_public.organizations where id = $1", [cast.a.org.id]);
  expect(rows[0].name).toBe("Alpha Org");
});

test("a project in another organization: NOT_FOUND for a user, FORBIDDEN for an API key; none created", async () => {
  const CREATE = `mutation($o: UUID!) { createProject(input: {project: {organizationId: $o, name: "Intruder"}}) { project { id } } }`;
  expect(only(await server.graphql(CREATE, { o: cast.b.org.id }, cast.a.owner))).toEqual({ code: "NOT_FOUND", message: "No such organization." });
  expect(only(await server.graphql(CREATE, { o: cast.b.org.id }, memberKey))).toEqual({
    code: "FORBIDDEN",
    message: "Your role may not make this change in this organization.",
  });
  const { rows } = await db.owner.query("select count(*)::int as n from app_public.projects where name = 'Intruder'");
  expect(rows[0].n).toBe(0);
});

test("first: -1 is INVALID_PAGE_SIZE", async () => {
  const response = await server.graphql(`{ organizations(first: -1) { nodes { id } } }`, {}, cast.a.owner);
  expect(only(response).code).toBe("INVALID_PAGE_SIZE");
  expect(only(response).message).toBe("`first` must be a whole number from 0 to 200 (got -1).");
});

test("an invalid cursor: INVALID_CURSOR", async () => {
  const response = await server.graphql(`{ organizations(after: "garbage") { nodes { id } } }`, {}, cast.a.owner);
  expect(only(response)).toEqual({ code: "INVALID_CURSOR", message: "Invalid cursor, please enter a cursor from a previous request, or null." });
});

test("GraphQL syntax and validation errors: GRAPHQL_PARSE_FAILED, GRAPHQL_VALIDATION_FAILED", async () => {
  expect(only(await server.graphql(`{ organizations `, {}, cast.a.owner))).toEqual({ code: "GRAPHQL_PARSE_FAILED", message: "Syntax Error: Expected Name, found <EOF>." });
  expect(only(await server.graphql(`{ nope }`, {}, cast.a.owner))).toEqual({
    code: "GRAPHQL_VALIDATION_FAILED",
    message: 'Cannot query field "nope" on type "Query". Did you mean "node"?',
  });
  expect(only(await server.graphql(`{ organization(id: "not-a-uuid") { id } }`, {}, cast.a.owner))).toEqual({
    code: "GRAPHQL_VALIDATION_FAILED",
    message: "Invalid UUID, expected 32 hexadecimal characters, optionally with hyphens",
  });
});

test("a malformed UUID in a variable: HTTP 400 with INVALID_VARIABLES (graphql-response+json)", async () => {
  const response = await post(JSON.stringify({ query: "query($id: UUID!) { organization(id: $id) { id } }", variables: { id: "not-a-uuid" } }), {
    "content-type": "application/json",
    accept: "application/graphql-response+json",
  });
  expect(response.status).toBe(400);
  expect(response.body.errors).toHaveLength(1);
  expect(response.body.errors[0]).toMatchObject({
    message: 'Variable "$id" got invalid value "not-a-uuid"; Invalid UUID, expected 32 hexadecimal characters, optionally with hyphens',
    extensions: { code: "INVALID_VARIABLES" },
  });
});

test("an unknown operationName: INVALID_OPERATION_NAME", async () => {
  const response = await post(JSON.stringify({ query: "query A { __typename } query B { __typename }", operationName: "C" }), {
    "content-type": "application/json",
  });
  expect(response.body.errors[0]).toMatchObject({ message: 'Unknown operation named "C".', extensions: { code: "INVALID_OPERATION_NAME" } });
});

test("introspection nested past graphql-js's limit: INTROSPECTION_TOO_DEEP", async () => {
  const response = await server.graphql(`{ __schema { types { fields { type { fields { type { fields { type { fields { type { name } } } } } } } } } } }`);
  expect(only(response)).toEqual({ code: "INTROSPECTION_TOO_DEEP", message: "Maximum introspection depth exceeded" });
});

test("a body over the limit is HTTP 413 REQUEST_TOO_LARGE as application/json and as application/graphql", async () => {
  const query = "{ " + "a ".repeat(60_000) + "}";
  const asJson = await post(JSON.stringify({ query }), { "content-type": "application/json" });
  expect(asJson.status).toBe(413);
  expect(asJson.body.errors[0].extensions.code).toBe("REQUEST_TOO_LARGE");
  const asGraphQL = await post(query, { "content-type": "application/graphql" });
  expect(asGraphQL.status).toBe(413);
  expect(asGraphQL.body.errors[0]).toMatchObject({ message: "Request body is larger than the limit.", extensions: { code: "REQUEST_TOO_LARGE" } });
});

test("an unsupported content type: UNSUPPORTED_MEDIA_TYPE", async () => {
  const response = await post("query=%7B__typename%7D", { "content-type": "application/x-www-form-urlencoded" });
  expect(response.status).toBe(415);
  expect(response.body.errors[0].extensions.code).toBe("UNSUPPORTED_MEDIA_TYPE");
});
