// Sessions in SQL: start_session (lifetime, user agent), authenticate (same answer for unknown
// and wrong; success clears the email's failures), liveness with idle expiry, mySessions,
// revokeSession (own only), revokeOtherSessions.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { codeOf, registerInSql } from "../../helpers/sql-accounts.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const live = async (sessionId: string, userId: string) =>
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
  expect(await live(u.sessionId, u.userId)).toBe(true);
  await db.owner.query("update app_private.sessions set last_used_at = now() - interval '10 minutes' where id = $1", [u.sessionId]);
  expect(await live(u.sessionId, u.userId)).toBe(true);
  const t1 = (await db.owner.query("select last_used_at from app_private.sessions where id = $1", [u.sessionId])).rows[0].last_used_at;
  expect(await live(u.sessionId, u.userId)).toBe(true);
  const t2 = (await db.owner.query("select last_used_at from app_private.sessions where id = $1", [u.sessionId])).rows[0].last_used_at;
  expect(t2).toEqual(t1); // not rewritten within the minute
  await db.owner.query("update app_private.sessions set last_used_at = now() - interval '8 hours 1 second' where id = $1", [u.sessionId]);
  expect(await live(u.sessionId, u.userId)).toBe(false);
  const other = await registerInSql(db);
  expect(await live(other.sessionId, u.userId)).toBe(false); // a session of someone else
  await db.owner.query("update app_private.sessions set expires_at = now() where id = $1", [other.sessionId]);
  expect(await live(other.sessionId, other.userId)).toBe(false);
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
  expect(await live(second, u.userId)).toBe(true);
  expect((await db.queryAs(u, "select app_public.revoke_other_sessions() as n")).rows[0].n).toBe(1);
  expect(await live(second, u.userId)).toBe(false);
  expect(await live(u.sessionId, u.userId)).toBe(true);
  expect((await db.queryAs(u, "select app_public.revoke_session($1) as ok", [u.sessionId])).rows[0].ok).toBe(true);
  expect(await live(u.sessionId, u.userId)).toBe(false);
  expect((await db.queryAs(null, "select count(*)::int as n from app_public.my_sessions()")).rows[0].n).toBe(0);
});
