// Sign-in flows (sign-in-flows.sql): state, nonce and PKCE verifier made in the database, bound to
// the browser that started the flow, single use, ten minutes; completed once; flows started are
// limited per client address. Time is moved by moving expires_at back, never by waiting.

import { randomBytes } from "node:crypto";
import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createUser } from "../../helpers/fixtures.ts";
import { codeOf } from "../../helpers/sql-accounts.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const browser = () => randomBytes(32).toString("base64url");

async function start(secret: string, address = "192.0.2.10", linkUserId: string | null = null, provider = "google") {
  const client = await db.owner.connect();
  try {
    await client.query("begin");
    await client.query("select set_config('tenantbase.client_address', $1, true)", [address]);
    const { rows } = await client.query("select * from app_private.start_sign_in_flow($1, $2, 'http://localhost:3000/cb', $3)", [provider, secret, linkUserId]);
    await client.query("commit");
    return rows[0] as { state: string; nonce: string; code_verifier: string };
  } catch (error) {
    await client.query("rollback");
    throw error;
  } finally {
    client.release();
  }
}
const take = (state: string, secret: string, provider = "google") =>
  db.owner.query("select (f).* from app_private.take_sign_in_flow($1, $2, $3) f", [provider, state, secret]).then((r) => r.rows[0]);

test("start makes a fresh state, nonce and 43-character PKCE verifier; only the state's hash is kept", async () => {
  const secret = browser();
  const a = await start(secret);
  const b = await start(secret);
  for (const flow of [a, b]) {
    expect(flow.code_verifier).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(flow.state).toMatch(/^[A-Za-z0-9_-]{43}$/);
  }
  expect(new Set([a.state, b.state, a.nonce, b.nonce, a.code_verifier, b.code_verifier]).size).toBe(6);
  const { rows } = await db.owner.query("select count(*)::int as n from app_private.sign_in_flows where state_hash = digest($1, 'sha256') and expires_at between now() + interval '9 minutes' and now() + interval '10 minutes'", [a.state]);
  expect(rows[0].n).toBe(1);
  expect((await db.owner.query("select count(*)::int as n from app_private.sign_in_flows where state_hash::text like '%' || $1 || '%'", [a.state])).rows[0].n).toBe(0);
  await expect(start("short")).rejects.toThrow(/browser secret/);
});

test("take: once, by the browser that started it, for its provider; a replay, another browser or another provider finds nothing", async () => {
  const secret = browser();
  const flow = await start(secret);
  expect(await codeOf(take(flow.state, browser()))).toBe("SIGN_IN_FLOW_INVALID");
  expect(await codeOf(take(flow.state, secret, "github"))).toBe("SIGN_IN_FLOW_INVALID");
  const taken = await take(flow.state, secret);
  expect(taken.nonce).toBe(flow.nonce);
  expect(taken.code_verifier).toBe(flow.code_verifier);
  expect(await codeOf(take(flow.state, secret))).toBe("SIGN_IN_FLOW_INVALID"); // replayed state
  expect(await codeOf(take("not-a-state", secret))).toBe("SIGN_IN_FLOW_INVALID");
});

test("take: a flow older than ten minutes is refused", async () => {
  const secret = browser();
  const flow = await start(secret);
  await db.owner.query("update app_private.sign_in_flows set expires_at = now() - interval '1 second' where state_hash = digest($1, 'sha256')", [flow.state]);
  expect(await codeOf(take(flow.state, secret))).toBe("SIGN_IN_FLOW_INVALID");
});

test("complete: once per taken flow; a sign-in gives a code, a link flow links and gives none", async () => {
  const secret = browser();
  const flow = await start(secret);
  const taken = await take(flow.state, secret);
  const complete = (id: string, subject: string) =>
    db.owner.query("select app_private.complete_sign_in_flow($1, 'https://issuer.example.com', $2, $3, true, 'Flo') as code", [id, subject, `flo-${randomBytes(4).toString("hex")}@example.com`]).then((r) => r.rows[0].code);
  const code = await complete(taken.id, "flo-1");
  expect(code).toMatch(/^[A-Za-z0-9_-]{43}$/);
  expect(await codeOf(complete(taken.id, "flo-1"))).toBe("SIGN_IN_FLOW_INVALID");
  // a flow never taken (its state not presented) cannot be completed
  const untaken = await start(secret);
  const { rows } = await db.owner.query("select id from app_private.sign_in_flows where state_hash = digest($1, 'sha256')", [untaken.state]);
  expect(await codeOf(complete(rows[0].id, "flo-2"))).toBe("SIGN_IN_FLOW_INVALID");

  const me = await createUser(db);
  const linkFlow = await start(secret, "192.0.2.10", me.userId);
  const linkTaken = await take(linkFlow.state, secret);
  expect(linkTaken.link_user_id).toBe(me.userId);
  expect(await complete(linkTaken.id, "flo-3")).toBeNull();
  expect((await db.owner.query("select user_id from app_private.identities where subject = 'flo-3'")).rows[0].user_id).toBe(me.userId);
});

test("flows started are limited per client address (TOO_MANY_ATTEMPTS with retryAfter); other addresses are not", async () => {
  await db.owner.query(`update app_private.account_settings set attempt_limits = attempt_limits || '{"sign_in_flow": {"address": {"max": 3, "seconds": 900}}}'`);
  const secret = browser();
  for (let i = 0; i < 3; i++) await start(secret, "198.51.100.7");
  let error: any;
  try {
    await start(secret, "198.51.100.7");
  } catch (e) {
    error = e;
  }
  expect(error?.detail).toBe("TOO_MANY_ATTEMPTS");
  expect(JSON.parse(error.hint).retryAfter).toBeGreaterThan(0);
  await start(secret, "198.51.100.8");
});

test("flows left unfinished are cleared as new ones start", async () => {
  const secret = browser();
  const old = await start(secret, "203.0.113.9");
  await db.owner.query("update app_private.sign_in_flows set expires_at = now() - interval '2 hours' where state_hash = digest($1, 'sha256')", [old.state]);
  await start(secret, "203.0.113.9");
  expect((await db.owner.query("select count(*)::int as n from app_private.sign_in_flows where state_hash = digest($1, 'sha256')", [old.state])).rows[0].n).toBe(0);
});
