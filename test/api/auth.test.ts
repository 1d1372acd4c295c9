// register / authenticate / logout and the bearer-token rules, over real HTTP.

import jwt from "jsonwebtoken";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { startTestServer, TEST_JWT, type TestServer } from "../helpers/server.ts";

let db: TestDatabase;
let server: TestServer;
beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db);
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

const REGISTER = `mutation($email: String!, $password: String!, $name: String!) {
  register(input: {email: $email, password: $password, name: $name}) { jwtToken }
}`;
const AUTHENTICATE = `mutation($email: String!, $password: String!) {
  authenticate(input: {email: $email, password: $password}) { jwtToken }
}`;
const ME = `{ currentUser { id email name } }`;

let counter = 0;
function email() {
  counter += 1;
  return `person${counter}-${Date.now()}@example.com`;
}

async function userCount(): Promise<number> {
  const { rows } = await db.owner.query("select count(*)::int as n from app_public.users");
  return rows[0].n;
}

function codes(response: { errors?: { extensions?: { code?: string } }[] }) {
  return (response.errors ?? []).map((e) => e.extensions?.code);
}

describe("register", () => {
  test("returns a signed JWT with sub, session_id, exp, aud and iss", async () => {
    const address = email();
    const response = await server.graphql(REGISTER, { email: address, password: "correct horse", name: "Ada" });
    expect(response.errors).toBeUndefined();
    const token = response.data.register.jwtToken as string;
    const claims = jwt.verify(token, TEST_JWT.secret, { algorithms: ["HS256"] }) as jwt.JwtPayload;
    expect(claims).toMatchObject({ aud: "tenantbase", iss: "tenantbase", role: "app_user" });
    expect(claims.sub).toMatch(/^[0-9a-f-]{36}$/);
    expect(claims.session_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(claims.exp).toBeGreaterThan(Date.now() / 1000);

    const me = await server.graphql(ME, {}, token);
    expect(me.data.currentUser).toEqual({ id: claims.sub, email: address, name: "Ada" });
  });

  test("stores only a bcrypt hash of the password", async () => {
    const address = email();
    await server.graphql(REGISTER, { email: address, password: "correct horse", name: "Ada" });
    const { rows } = await db.owner.query(
      `select s.password_hash from app_private.user_secrets s join app_public.users u on u.id = s.user_id where u.email = $1`,
      [address],
    );
    expect(rows[0].password_hash).toMatch(/^\$2a\$10\$/);
    expect(rows[0].password_hash).not.toContain("correct horse");
  });

  test.each([
    ["not-an-email", "INVALID_EMAIL"],
    ["two@@example.com", "INVALID_EMAIL"],
    ["", "INVALID_EMAIL"],
    [`${"x".repeat(250)}@example.com`, "INVALID_EMAIL"],
  ])("refuses email %j with %s and creates nothing", async (address, code) => {
    const before = await userCount();
    const response = await server.graphql(REGISTER, { email: address, password: "long enough", name: "Ada" });
    expect(codes(response)).toEqual([code]);
    expect(response.data?.register).toBeNull();
    expect(await userCount()).toBe(before);
  });

  test("refuses a password under 8 characters with WEAK_PASSWORD", async () => {
    const before = await userCount();
    const response = await server.graphql(REGISTER, { email: email(), password: "short7!", name: "Ada" });
    expect(codes(response)).toEqual(["WEAK_PASSWORD"]);
    expect(await userCount()).toBe(before);
  });

  test("refuses a taken email (any case) with EMAIL_TAKEN", async () => {
    const address = email();
    await server.graphql(REGISTER, { email: address, password: "long enough", name: "Ada" });
    const before = await userCount();
    const response = await server.graphql(REGISTER, { email: address.toUpperCase(), password: "long enough", name: "Ada" });
    expect(codes(response)).toEqual(["EMAIL_TAKEN"]);
    expect(await userCount()).toBe(before);
  });

  test("refuses an empty name with INVALID_NAME", async () => {
    const response = await server.graphql(REGISTER, { email: email(), password: "long enough", name: "  " });
    expect(codes(response)).toEqual(["INVALID_NAME"]);
  });

  test("wrong argument types are GraphQL validation errors, not database errors", async () => {
    const response = await server.graphql(`mutation { register(input: {email: 5, password: true, name: null}) { jwtToken } }`);
    expect(response.errors?.length).toBeGreaterThan(0);
    expect(JSON.stringify(response.errors)).not.toMatch(/select|insert|app_public|at .*\.js/i);
  });
});

describe("authenticate", () => {
  const address = `login-${Date.now()}@example.com`;
  beforeAll(async () => {
    await server.graphql(REGISTER, { email: address, password: "open sesame", name: "Lee" });
  });

  test("signs in with the right password, whatever the email's case", async () => {
    const response = await server.graphql(AUTHENTICATE, { email: address.toUpperCase(), password: "open sesame" });
    expect(response.errors).toBeUndefined();
    const me = await server.graphql(ME, {}, response.data.authenticate.jwtToken);
    expect(me.data.currentUser.email).toBe(address);
  });

  test("wrong password and unknown email get the same INVALID_CREDENTIALS answer", async () => {
    const wrong = await server.graphql(AUTHENTICATE, { email: address, password: "not it at all" });
    const unknown = await server.graphql(AUTHENTICATE, { email: `nobody-${Date.now()}@example.com`, password: "not it at all" });
    expect(codes(wrong)).toEqual(["INVALID_CREDENTIALS"]);
    expect(codes(unknown)).toEqual(["INVALID_CREDENTIALS"]);
    expect(wrong.errors![0].message).toBe(unknown.errors![0].message);
  });
});

describe("bearer tokens", () => {
  let token: string;
  let claims: jwt.JwtPayload;
  beforeAll(async () => {
    const response = await server.graphql(REGISTER, { email: email(), password: "long enough", name: "Tok" });
    token = response.data.register.jwtToken;
    claims = jwt.decode(token) as jwt.JwtPayload;
  });

  function sign(payload: object, secret = TEST_JWT.secret, options: jwt.SignOptions = {}) {
    return jwt.sign(payload, secret, { algorithm: "HS256", ...options });
  }
  const base = () => ({ role: "app_user", sub: claims.sub, session_id: claims.session_id, aud: "tenantbase", iss: "tenantbase" });

  /** The 401 and its one INVALID_TOKEN error; answers the response's content-type. */
  async function expectInvalid(authorization: string, accept?: string): Promise<string | null> {
    const response = await fetch(`${server.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization, ...(accept ? { accept } : {}) },
      body: JSON.stringify({ query: ME }),
    });
    expect(response.status).toBe(401);
    const body = (await response.json()) as any;
    expect(body).toEqual({ errors: [{ message: expect.any(String), extensions: { code: "INVALID_TOKEN" } }] });
    return response.headers.get("content-type");
  }

  test("a 401 is a GraphQL response: application/graphql-response+json when accepted (Apollo Client reads errors[0].extensions.code), else application/json", async () => {
    // what Apollo Client 4 and graphql-http clients send
    const apollo = "application/graphql-response+json,application/json;q=0.9";
    const missingSession = `Bearer ${sign({ ...base(), session_id: "01a20000-0000-7000-8000-000000000001", exp: claims.exp })}`;
    for (const authorization of ["Bearer not.a.jwt", missingSession]) {
      expect(await expectInvalid(authorization, apollo)).toBe("application/graphql-response+json; charset=utf-8");
      expect(await expectInvalid(authorization, "application/json")).toBe("application/json; charset=utf-8");
      expect(await expectInvalid(authorization, "*/*")).toBe("application/json; charset=utf-8");
    }
  });

  test("no token: anonymous, sees no user", async () => {
    const response = await server.graphql(ME);
    expect(response.status).toBe(200);
    expect(response.data.currentUser).toBeNull();
  });

  test("malformed token → 401 INVALID_TOKEN", () => expectInvalid("Bearer not.a.jwt"));
  test("not a Bearer header → 401 INVALID_TOKEN", () => expectInvalid(`Basic ${Buffer.from("a:b").toString("base64")}`));
  test("expired token → 401 INVALID_TOKEN", () =>
    expectInvalid(`Bearer ${sign({ ...base(), exp: Math.floor(Date.now() / 1000) - 60 })}`));
  test("token without exp → 401 INVALID_TOKEN", () => expectInvalid(`Bearer ${sign(base())}`));
  test("wrongly signed token → 401 INVALID_TOKEN", () =>
    expectInvalid(`Bearer ${sign({ ...base(), exp: claims.exp }, "another-secret-of-at-least-32-characters")}`));
  test("alg none token → 401 INVALID_TOKEN", () =>
    expectInvalid(`Bearer ${jwt.sign({ ...base(), exp: claims.exp }, "", { algorithm: "none" })}`));
  test("HS512 token (algorithm not pinned one) → 401 INVALID_TOKEN", () =>
    expectInvalid(`Bearer ${jwt.sign({ ...base(), exp: claims.exp }, TEST_JWT.secret, { algorithm: "HS512" })}`));
  test("wrong audience → 401 INVALID_TOKEN", () =>
    expectInvalid(`Bearer ${sign({ ...base(), aud: "someone-else", exp: claims.exp })}`));
  test("token for a session that does not exist → 401 INVALID_TOKEN", () =>
    expectInvalid(`Bearer ${sign({ ...base(), session_id: "01a20000-0000-7000-8000-000000000000", exp: claims.exp })}`));

  test("logout revokes the session: the same token is refused at once", async () => {
    const response = await server.graphql(REGISTER, { email: email(), password: "long enough", name: "Out" });
    const own = response.data.register.jwtToken;
    expect((await server.graphql(ME, {}, own)).data.currentUser).not.toBeNull();
    const logout = await server.graphql(`mutation { logout(input: {}) { success } }`, {}, own);
    expect(logout.data.logout.success).toBe(true);
    await expectInvalid(`Bearer ${own}`);
  });

  test("logout takes effect on the very next request: a tenant query with the token is refused, the user's other session goes on", async () => {
    const address = email();
    const registered = await server.graphql(REGISTER, { email: address, password: "long enough", name: "Two" });
    const first = registered.data.register.jwtToken;
    const second = (await server.graphql(AUTHENTICATE, { email: address, password: "long enough" })).data.authenticate.jwtToken;
    const created = await server.graphql(`mutation { createOrganization(input: { name: "Next Request" }) { organization { id } } }`, {}, first);
    const organizationId = created.data.createOrganization.organization.id;
    const LIST = `{ organizations { nodes { id } } }`;
    expect((await server.graphql(LIST, {}, first)).data.organizations.nodes).toEqual([{ id: organizationId }]);
    expect((await server.graphql(`mutation { logout(input: {}) { success } }`, {}, first)).data.logout.success).toBe(true);
    // the very next request with the logged-out token, a tenant query: 401, no data
    const next = await fetch(`${server.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${first}` },
      body: JSON.stringify({ query: LIST }),
    });
    expect(next.status).toBe(401);
    expect(await next.json()).toEqual({ errors: [{ message: expect.any(String), extensions: { code: "INVALID_TOKEN" } }] });
    // the same user's other session is untouched
    expect((await server.graphql(LIST, {}, second)).data.organizations.nodes).toEqual([{ id: organizationId }]);
  });

  test("a role claim cannot escalate: the server always uses app_user", async () => {
    const forged = sign({ ...base(), role: "app_owner", exp: claims.exp });
    const response = await server.graphql(`{ users { nodes { id } } }`, {}, forged);
    expect(response.status).toBe(200);
    expect(response.data.users.nodes).toEqual([{ id: claims.sub }]);
  });
});
