// Sessions (db/functions/010-foundation/sessions.sql): signing in opens a session a day long,
// with the same answer for an unknown email and a wrong password; signing out revokes the
// current session only.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { expectCode } from "../../helpers/team.ts";

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
  expect(await logout(first.session_id)).toBe(false); // already revoked
  // anonymous callers cannot log anybody out
  await expect(db.queryAs(null, "select app_public.logout()")).rejects.toMatchObject({ code: "42501" });
  expect(await live(second.session_id)).toBe(true);
});

test("app roles cannot open sessions except by signing in", async () => {
  await expect(db.queryAs(null, "select app_private.start_session($1)", [userId])).rejects.toMatchObject({ code: "42501" });
  await expect(db.queryAs({ userId }, "select app_private.start_session($1)", [userId])).rejects.toMatchObject({ code: "42501" });
});
