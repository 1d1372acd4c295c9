// GraphQL limits and hardening over real HTTP: depth, node count, body size (413), batching,
// introspection and GraphiQL switches, CORS from config, security headers, request ids.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { createUser } from "../helpers/fixtures.ts";
import { tokenFor } from "../helpers/server.ts";
import { postGraphQL, startServer, type OpsServer } from "../helpers/operations.ts";

let db: TestDatabase;
let server: OpsServer;
let locked: OpsServer;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startServer(db, {
    limits: { maxDepth: 8, maxNodes: 50, maxBodyBytes: 5000 },
    corsOrigins: ["https://app.example.com"],
  });
  // What production runs with: no GraphiQL, no introspection.
  locked = await startServer(db, { graphiql: false, limits: { introspection: false } });
});
afterAll(async () => {
  await server?.close();
  await locked?.close();
  await db?.drop();
});

/** `{ currentUser { organizationMembers { nodes { user { … email } } } } }`, n levels of members. */
function nested(levels: number): string {
  let inner = "email";
  for (let i = 0; i < levels; i++) inner = `organizationMembers { nodes { user { ${inner} } } }`;
  return `query Deep { currentUser { ${inner} } }`;
}

test("a query within the depth limit runs; one level deeper is refused with QUERY_TOO_DEEP", async () => {
  const user = await createUser(db);
  const token = tokenFor(user);
  // depth: currentUser (1) + 3 per level + email (1) = 3*2 + 2 = 8: at the limit.
  const ok = await postGraphQL(server.url, { query: nested(2) }, { authorization: `Bearer ${token}` });
  expect(ok.status).toBe(200);
  expect(ok.body.errors).toBeUndefined();
  expect(ok.body.data.currentUser.organizationMembers.nodes).toEqual([]);

  // GraphQL over HTTP: a request the server refuses is 400 for clients that accept
  // application/graphql-response+json, and 200 (with errors, no data) for legacy application/json.
  const deep = await postGraphQL(
    server.url,
    { query: nested(3) },
    { authorization: `Bearer ${token}`, accept: "application/graphql-response+json" },
  );
  expect(deep.status).toBe(400);
  expect(deep.body.data).toBeUndefined();
  expect(deep.body.errors).toEqual([
    expect.objectContaining({
      message: "Operation Deep is nested 11 levels deep; the limit is 8.",
      extensions: { code: "QUERY_TOO_DEEP" },
    }),
  ]);
});

test("fragments are expanded when measuring depth", async () => {
  const query = `
    fragment M on User { organizationMembers { nodes { user { ...N } } } }
    fragment N on User { organizationMembers { nodes { user { ...O } } } }
    fragment O on User { organizationMembers { nodes { user { email } } } }
    { currentUser { ...M } }`;
  const res = await postGraphQL(server.url, { query });
  expect(res.status).toBe(200); // legacy application/json client
  expect(res.body.data).toBeUndefined();
  expect(res.body.errors[0].extensions.code).toBe("QUERY_TOO_DEEP");
});

test("too many fields (aliases count) is refused with QUERY_TOO_COMPLEX; at the limit it runs", async () => {
  const fields = (n: number) => Array.from({ length: n }, (_, i) => `f${i}: __typename c${i}: currentUser { id }`).join(" ");
  // Every selection counts, meta-fields too: each pair is __typename (1) + currentUser { id } (2).
  const ok = await postGraphQL(server.url, { query: `{ ${fields(16)} }` });
  expect(ok.status).toBe(200);
  expect(ok.body.errors).toBeUndefined();
  const tooMany = await postGraphQL(server.url, { query: `{ ${fields(17)} }` });
  expect(tooMany.body.data).toBeUndefined();
  expect(tooMany.body.errors).toEqual([
    expect.objectContaining({
      message: "The operation selects more than 50 fields; ask for less, or split it.",
      extensions: { code: "QUERY_TOO_COMPLEX" },
    }),
  ]);
});

test("a body over the size limit is answered 413 with REQUEST_TOO_LARGE, nothing executed", async () => {
  const padding = "x".repeat(6000);
  const res = await postGraphQL(server.url, { query: `{ __typename }`, variables: { padding } });
  expect(res.status).toBe(413);
  expect(res.body.errors).toEqual([
    { message: "Request body is larger than the limit of 5000 bytes.", extensions: { code: "REQUEST_TOO_LARGE" } },
  ]);
  // application/graphql bodies are read by grafserv itself, with the same limit.
  const raw = await fetch(`${server.url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/graphql", accept: "application/json" },
    body: `{ __typename } # ${padding}`,
  });
  expect(raw.status).toBe(413);
});

test("batched (array) requests of more than one operation are refused with BATCH_NOT_SUPPORTED", async () => {
  for (const batch of [[{ query: "{ __typename }" }, { query: "{ __typename }" }], []]) {
    const res = await postGraphQL(server.url, batch);
    expect(res.status).toBe(400);
    expect(res.body.errors).toEqual([
      {
        message: `Batched requests are not supported: send one operation per request (an array of exactly one is accepted), got an array of ${batch.length}.`,
        extensions: { code: "BATCH_NOT_SUPPORTED" },
      },
    ]);
  }
});

test("an array of one operation is served and answered as an array of one result (batching clients)", async () => {
  const ok = await postGraphQL(server.url, [{ query: "query Probe { __typename }", operationName: "Probe" }]);
  expect(ok.status).toBe(200);
  expect(ok.body).toEqual([{ data: { __typename: "Query" } }]);
  // an error inside it is answered the same way, inside the array
  const invalid = await postGraphQL(server.url, [{ query: "{ noSuchField }" }]);
  expect(Array.isArray(invalid.body)).toBe(true);
  expect(invalid.body[0].errors[0].extensions.code).toBe("GRAPHQL_VALIDATION_FAILED");
  // an array of one that is not an operation object is still refused
  const odd = await postGraphQL(server.url, ["{ __typename }"]);
  expect(odd.status).toBe(400);
  expect(odd.body.errors[0].extensions.code).toBe("BATCH_NOT_SUPPORTED");
});

test("malformed JSON is a clear 400", async () => {
  const res = await postGraphQL(server.url, '{"query": ');
  expect(res.status).toBe(400);
  expect(res.body.errors[0].extensions.code).toBe("INVALID_JSON");
});

test("introspection can be turned off (INTROSPECTION_DISABLED) while normal queries still work", async () => {
  const introspection = await postGraphQL(locked.url, { query: "{ __schema { queryType { name } } }" });
  expect(introspection.body.data).toBeUndefined();
  expect(introspection.body.errors[0]).toMatchObject({
    message: "Introspection is disabled on this server.",
    extensions: { code: "INTROSPECTION_DISABLED" },
  });
  const type = await postGraphQL(locked.url, { query: '{ __type(name: "User") { name } }' });
  expect(type.body.errors[0].extensions.code).toBe("INTROSPECTION_DISABLED");
  const normal = await postGraphQL(locked.url, { query: "{ __typename currentUser { id } }" });
  expect(normal.status).toBe(200);
  expect(normal.body).toEqual({ data: { __typename: "Query", currentUser: null } });
  // and on the default server introspection works
  const open = await postGraphQL(server.url, { query: "{ __schema { queryType { name } } }" });
  expect(open.body).toEqual({ data: { __schema: { queryType: { name: "Query" } } } });
});

test("GraphiQL can be turned off", async () => {
  const off = await fetch(`${locked.url}/graphiql`, { headers: { accept: "text/html" } });
  expect(off.status).toBe(404);
  const on = await fetch(`${server.url}/graphiql`, { headers: { accept: "text/html" } });
  expect(on.status).toBe(200);
  expect(await on.text()).toContain("ruru-root");
});

test("CORS: configured origins are allowed, others get no CORS headers", async () => {
  const preflight = await fetch(`${server.url}/graphql`, {
    method: "OPTIONS",
    headers: {
      origin: "https://app.example.com",
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization,content-type",
    },
  });
  expect(preflight.status).toBe(204);
  expect(preflight.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
  expect(preflight.headers.get("access-control-allow-headers")).toMatch(/Authorization/);

  const evil = await fetch(`${server.url}/graphql`, {
    method: "POST",
    headers: { origin: "https://evil.example.net", "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify({ query: "{ __typename }" }),
  });
  expect(evil.headers.get("access-control-allow-origin")).toBeNull();
  // a server with no CORS_ORIGINS sends no CORS headers at all
  const none = await fetch(`${locked.url}/graphql`, {
    method: "OPTIONS",
    headers: { origin: "https://app.example.com", "access-control-request-method": "POST" },
  });
  expect(none.headers.get("access-control-allow-origin")).toBeNull();
});

test("security headers: strict CSP on the API, a nonce CSP on GraphiQL whose scripts carry the nonce", async () => {
  const api = await fetch(`${server.url}/healthz`);
  expect(api.headers.get("content-security-policy")).toContain("default-src 'none'");
  expect(api.headers.get("x-content-type-options")).toBe("nosniff");
  expect(api.headers.get("strict-transport-security")).toMatch(/max-age=/);
  expect(api.headers.get("x-powered-by")).toBeNull();

  const page = await fetch(`${server.url}/graphiql`, { headers: { accept: "text/html" } });
  const csp = page.headers.get("content-security-policy")!;
  const nonce = /'nonce-([^']+)'/.exec(csp)?.[1];
  expect(nonce).toBeTruthy();
  expect(csp).not.toContain("unsafe-eval");
  expect(csp).toMatch(/script-src 'self' 'nonce-/);
  const html = await page.text();
  const scripts = html.match(/<script\b[^>]*>/g) ?? [];
  expect(scripts.length).toBeGreaterThan(0);
  for (const tag of scripts) expect(tag).toContain(`nonce="${nonce}"`);
  // a second load gets a fresh nonce
  const again = await fetch(`${server.url}/graphiql`, { headers: { accept: "text/html" } });
  expect(again.headers.get("content-security-policy")).not.toContain(nonce!);
});

test("every response carries a request id; a sane incoming X-Request-Id is kept, a bad one replaced", async () => {
  const a = await fetch(`${server.url}/healthz`);
  expect(a.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  const b = await fetch(`${server.url}/healthz`, { headers: { "x-request-id": "edge-1234" } });
  expect(b.headers.get("x-request-id")).toBe("edge-1234");
  const c = await fetch(`${server.url}/healthz`, { headers: { "x-request-id": "bad id with spaces" } });
  expect(c.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
});
