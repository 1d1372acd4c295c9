// Sessions (db/functions/010-foundation/sessions.sql): signing in opens a session a day long,
// with the same answer for an unknown email and a wrong password; signing out revokes the
// current session only; the user agent is kept; liveness with idle expiry; mySessions,
// revokeSession (own only), revokeOtherSessions.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { expectCode } from "../../helpers/team.ts";
import { codeOf, registerInSql } from "../../helpers/sql-accounts.ts";

let db: TestDatabase;
let userId: string;
beforeAll(async () => {
  db = await createTestDatabase();
  const { rows } = await db.queryAs(null, "select (app_public.register('grace@example.com', 'correct horse', 'Grace')).sub");
  userId = rows[0].sub;
});
afterAll(() => db?.drop());

const authenticate = (email: unknown, password: unknown) =>
  db.queryAs(null, "select (t).* from app_public.authenticate($1, $2) t", [email, password]).then((r) => r.rows[0]);
const sessions = async () =>
  (await db.owner.query("select count(*)::int as n from app_private.sessions where user_id = $1", [userId])).rows[0].n;
const live = async (sessionId: string) =>
  (await db.owner.query("select app_hidden.session_is_live($1, $2) as live", [sessionId, userId])).rows[0].live;

test("the right password (any case of the email) opens a new session that lasts a day", async () => {
  const before = await sessions();
  const token = await authenticate(" GRACE@example.com", "correct horse");
  expect(token).toMatchObject({ role: "app_user", sub: userId });
  expect(await sessions()).toBe(before + 1);
  expect(await live(token.session_id)).toBe(true);
  const { rows } = await db.owner.query("select expires_at - created_at as length from app_private.sessions where id = $1", [token.session_id]);
  expect(rows[0].length).toEqual({ days: 1 });
  // exp is the expiry in whole seconds, rounded (extract(epoch …)::bigint)
  expect(Number(token.exp)).toBe(Math.round((await db.owner.query("select expires_at from app_private.sessions where id = $1", [token.session_id])).rows[0].expires_at.getTime() / 1000));
});

test("a wrong password and an unknown email get the same answer, and no session", async () => {
  const before = await sessions();
  for (const [email, password] of [["grace@example.com", "wrong horse"], ["nobody@example.com", "correct horse"], ["grace@example.com", null], [null, null], ["", ""]]) {
    await expectCode(authenticate(email, password), "INVALID_CREDENTIALS");
  }
  expect(await sessions()).toBe(before);
});

test("logout revokes the caller's own session, once; other sessions stay live", async () => {
  const first = await authenticate("grace@example.com", "correct horse");
  const second = await authenticate("grace@example.com", "correct horse");
  const logout = (sessionId: string) =>
    db.queryAs({ userId, sessionId }, "select app_public.logout() as ok").then((r) => r.rows[0].ok);
  expect(await logout(first.session_id)).toBe(true);
  expect(await live(first.session_id)).toBe(false);
  expect(await live(second.session_id)).toBe(true);
  // already revoked: the request itself is refused (app_hidden.start_request, 010-foundation/request.sql)
  await expect(logout(first.session_id)).rejects.toMatchObject({ code: "TB000", detail: "INVALID_TOKEN" });
  // anonymous callers cannot log anybody out
  await expect(db.queryAs(null, "select app_public.logout()")).rejects.toMatchObject({ code: "42501" });
  expect(await live(second.session_id)).toBe(true);
});

test("app roles cannot open sessions except by signing in", async () => {
  await expect(db.queryAs(null, "select app_private.start_session($1)", [userId])).rejects.toMatchObject({ code: "42501" });
  await expect(db.queryAs({ userId }, "select app_private.start_session($1)", [userId])).rejects.toMatchObject({ code: "42501" });
});

const liveFor = async (sessionId: string, userId: string) =>
  (await db.owner.query("select app_hidden.session_is_live($1, $2) as l", [sessionId, userId])).rows[0].l;

test("authenticate: wrong password and unknown email give the same code; the user agent is kept", async () => {
  const u = await registerInSql(db);
  expect(await codeOf(db.queryAs(null, "select app_public.authenticate($1, 'wrong password')", [u.email]))).toBe("INVALID_CREDENTIALS");
  expect(await codeOf(db.queryAs(null, "select app_public.authenticate('nobody@example.com', $1)", [u.password]))).toBe("INVALID_CREDENTIALS");
  const { rows } = await db.as(null, async (c) => {
    await c.query("select set_config('tenantbase.user_agent', 'Agent/9', true)");
    return c.query("select (app_public.authenticate($1, $2)).session_id as s", [u.email.toUpperCase(), u.password]);
  });
  const s = await db.owner.query("select user_agent, round(extract(epoch from expires_at - created_at)) as life from app_private.sessions where id = $1", [rows[0].s]);
  expect(s.rows[0]).toEqual({ user_agent: "Agent/9", life: "86400" });
});

test("liveness: revoked, expired and idle sessions are not live; use is recorded at most once a minute", async () => {
  const u = await registerInSql(db);
  expect(await liveFor(u.sessionId, u.userId)).toBe(true);
  await db.owner.query("update app_private.sessions set last_used_at = now() - interval '10 minutes' where id = $1", [u.sessionId]);
  expect(await liveFor(u.sessionId, u.userId)).toBe(true);
  const t1 = (await db.owner.query("select last_used_at from app_private.sessions where id = $1", [u.sessionId])).rows[0].last_used_at;
  expect(await liveFor(u.sessionId, u.userId)).toBe(true);
  const t2 = (await db.owner.query("select last_used_at from app_private.sessions where id = $1", [u.sessionId])).rows[0].last_used_at;
  expect(t2).toEqual(t1); // not rewritten within the minute
  await db.owner.query("update app_private.sessions set last_used_at = now() - interval '8 hours 1 second' where id = $1", [u.sessionId]);
  expect(await liveFor(u.sessionId, u.userId)).toBe(false);
  const other = await registerInSql(db);
  expect(await liveFor(other.sessionId, u.userId)).toBe(false); // a session of someone else
  await db.owner.query("update app_private.sessions set expires_at = now() where id = $1", [other.sessionId]);
  expect(await liveFor(other.sessionId, other.userId)).toBe(false);
});

test("mySessions, revokeSession (own only), revokeOtherSessions", async () => {
  const u = await registerInSql(db);
  const v = await registerInSql(db);
  const second = (await db.queryAs(null, "select (app_public.authenticate($1, $2)).session_id as s", [u.email, u.password])).rows[0].s;
  const mine = await db.queryAs(u, "select id, current from app_public.my_sessions()");
  expect(mine.rows.map((r) => [r.id, r.current])).toEqual([
    [second, false],
    [u.sessionId, true],
  ]);
  expect(await codeOf(db.queryAs(v, "select app_public.revoke_session($1)", [second]))).toBe("NOT_FOUND");
  expect(await liveFor(second, u.userId)).toBe(true);
  expect((await db.queryAs(u, "select app_public.revoke_other_sessions() as n")).rows[0].n).toBe(1);
  expect(await liveFor(second, u.userId)).toBe(false);
  expect(await liveFor(u.sessionId, u.userId)).toBe(true);
  expect((await db.queryAs(u, "select app_public.revoke_session($1) as ok", [u.sessionId])).rows[0].ok).toBe(true);
  expect(await liveFor(u.sessionId, u.userId)).toBe(false);
  expect((await db.queryAs(null, "select count(*)::int as n from app_public.my_sessions()")).rows[0].n).toBe(0);
});
