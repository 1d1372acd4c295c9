// Sessions over real HTTP: mySessions (current marked, user agent), revokeSession (own only),
// revokeOtherSessions, idle expiry (a session unused for longer than the idle timeout is refused;
// time is moved by moving last_used_at back, never by waiting).

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { codes, register, relaxAttemptLimits } from "../helpers/accounts.ts";

let db: TestDatabase;
let server: TestServer;
beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db);
  await relaxAttemptLimits(db);
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

const SESSIONS = `{ mySessions { id createdAt lastUsedAt userAgent current } }`;
const ME = `{ currentUser { id } }`;

async function signInWithAgent(email: string, password: string, agent: string): Promise<string> {
  const response = await fetch(`${server.url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", "user-agent": agent },
    body: JSON.stringify({
      query: `mutation($e: String!, $p: String!) { authenticate(input: {email: $e, password: $p}) { jwtToken } }`,
      variables: { e: email, p: password },
    }),
  });
  return ((await response.json()) as any).data.authenticate.jwtToken;
}

// The request's settings reach SQL as escaped literals in the statement that opens its
// transaction (server/request-transaction.ts): a user agent written to break out of one arrives
// byte for byte, and changes nothing else.
test("a user agent with quotes, backslashes and SQL arrives intact (the request start escapes every setting)", async () => {
  const ada = await register(server);
  const agent = `Evil'); select set_config('role', 'app_owner', true); -- \\' E'\\x27 $$ \\$q$ "quoted"`;
  const token = await signInWithAgent(ada.email, ada.password, agent);
  const r = await server.graphql(SESSIONS, {}, token);
  expect(r.errors).toBeUndefined();
  expect(r.data.mySessions.find((s: any) => s.current).userAgent).toBe(agent);
  const me = await server.graphql(ME, {}, token);
  expect(me.data.currentUser.id).toBe(ada.userId);
});

test("mySessions lists my live sessions, newest first, the current one marked, with their user agents", async () => {
  const ada = await register(server);
  const phone = await signInWithAgent(ada.email, ada.password, "Phone/1.0");
  const laptop = await signInWithAgent(ada.email, ada.password, "Laptop/2.0");
  const r = await server.graphql(SESSIONS, {}, laptop);
  expect(r.errors).toBeUndefined();
  const list = r.data.mySessions;
  expect(list).toHaveLength(3);
  expect(list.map((s: any) => s.userAgent)).toEqual(["Laptop/2.0", "Phone/1.0", expect.any(String)]);
  expect(list.map((s: any) => s.current)).toEqual([true, false, false]);
  for (const s of list) expect(new Date(s.lastUsedAt).getTime()).toBeGreaterThanOrEqual(new Date(s.createdAt).getTime());
  expect((await server.graphql(SESSIONS, {}, phone)).data.mySessions.map((s: any) => s.current)).toEqual([false, true, false]);
  // anonymous: none
  expect((await server.graphql(SESSIONS)).data.mySessions).toEqual([]);
});

test("revokeSession ends one of mine at once; another user's session is NOT_FOUND and stays", async () => {
  const bob = await register(server);
  const eve = await register(server);
  const second = await signInWithAgent(bob.email, bob.password, "Second");
  const REVOKE = `mutation($id: UUID!) { revokeSession(input: {id: $id}) { success } }`;
  expect(codes(await server.graphql(REVOKE, { id: eve.sessionId }, bob.token))).toEqual(["NOT_FOUND"]);
  expect((await server.graphql(ME, {}, eve.token)).status).toBe(200);
  const secondId = (await server.graphql(SESSIONS, {}, second)).data.mySessions.find((s: any) => s.current).id;
  expect((await server.graphql(REVOKE, { id: secondId }, bob.token)).data.revokeSession.success).toBe(true);
  expect((await server.graphql(ME, {}, second)).status).toBe(401);
  expect((await server.graphql(ME, {}, bob.token)).status).toBe(200);
  expect(codes(await server.graphql(REVOKE, { id: secondId }, bob.token))).toEqual(["NOT_FOUND"]); // already ended
  expect(codes(await server.graphql(REVOKE, { id: bob.sessionId }))).toEqual(["NOT_AUTHENTICATED"]);
});

test("revokeOtherSessions ends every other session and keeps this one", async () => {
  const cy = await register(server);
  const others = [];
  for (let i = 0; i < 4; i++) others.push(await signInWithAgent(cy.email, cy.password, `Device ${i}`));
  const r = await server.graphql(`mutation { revokeOtherSessions(input: {}) { revokedCount } }`, {}, cy.token);
  expect(r.data.revokeOtherSessions.revokedCount).toBe(4);
  for (const t of others) expect((await server.graphql(ME, {}, t)).status).toBe(401);
  expect((await server.graphql(SESSIONS, {}, cy.token)).data.mySessions).toHaveLength(1);
});

test("idle expiry: a session unused for longer than the idle timeout is refused; use keeps it alive", async () => {
  const dee = await register(server);
  const { rows } = await db.owner.query("select extract(epoch from session_idle_timeout)::int as s from app_private.account_settings");
  const idle = rows[0].s as number;
  expect(idle).toBe(8 * 3600); // SESSION_IDLE_TIMEOUT_SECONDS default
  // used 30 minutes ago: live, and the request records the use
  await db.owner.query("update app_private.sessions set last_used_at = now() - interval '30 minutes' where id = $1", [dee.sessionId]);
  expect((await server.graphql(ME, {}, dee.token)).status).toBe(200);
  const touched = await db.owner.query("select now() - last_used_at < interval '1 minute' as fresh from app_private.sessions where id = $1", [dee.sessionId]);
  expect(touched.rows[0].fresh).toBe(true);
  // idle one second longer than allowed: refused
  await db.owner.query("update app_private.sessions set last_used_at = now() - make_interval(secs => $2 + 1) where id = $1", [dee.sessionId, idle]);
  const r = await server.graphql(ME, {}, dee.token);
  expect(r.status).toBe(401);
  expect(codes(r)).toEqual(["INVALID_TOKEN"]);
  // and a shorter timeout is a setting
  const fresh = await signInWithAgent(dee.email, dee.password, "x");
  await db.owner.query("update app_private.account_settings set session_idle_timeout = interval '5 minutes'");
  try {
    await db.owner.query("update app_private.sessions set last_used_at = now() - interval '6 minutes' where user_id = $1", [dee.userId]);
    expect((await server.graphql(ME, {}, fresh)).status).toBe(401);
  } finally {
    await db.owner.query("update app_private.account_settings set session_idle_timeout = interval '8 hours'");
  }
});
