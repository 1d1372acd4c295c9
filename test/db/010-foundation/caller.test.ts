// Who is calling (db/functions/010-foundation/caller.sql): the user, session and API key from the
// transaction's claims, whether a session is live, and the organizations a caller (user or API
// key, by role) belongs to, which every tenant policy reads.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { twoTenants, createUser } from "../../helpers/fixtures.ts";
import { createApiKey, expectCode, queryAsApiKey } from "../../helpers/team.ts";
import { withSettings } from "../../../db/transaction.ts";

let db: TestDatabase;
let cast: Awaited<ReturnType<typeof twoTenants>>;
beforeAll(async () => {
  db = await createTestDatabase();
  cast = await twoTenants(db);
});
afterAll(() => db?.drop());

const createKey = (as: any, org: string, name = "backend", role = "member", expiresAt: string | null = null) =>
  createApiKey(db, as, org, name, role, expiresAt);

test("a key acts for its organization alone, with its role; revoking it ends even a request in flight", async () => {
  const member = await createKey(cast.a.admin, cast.a.org.id, "m", "member");
  const admin = await createKey(cast.a.admin, cast.a.org.id, "a", "admin");
  const ids = (keyId: string) =>
    queryAsApiKey(
      db,
      keyId,
      `select app_public.current_user_organization_ids() as m, app_public.current_user_organization_ids('admin') as a,
              app_public.current_user_organization_ids('owner') as o, app_public.current_user_id() as u`,
    ).then((r) => r.rows[0]);
  expect(await ids(member.id)).toEqual({ m: [cast.a.org.id], a: [], o: [], u: null });
  expect(await ids(admin.id)).toEqual({ m: [cast.a.org.id], a: [cast.a.org.id], o: [], u: null });

  // RLS follows: members' tables yes, admin-only tables only for the admin key, B never
  const count = async (keyId: string, table: string) =>
    (await queryAsApiKey(db, keyId, `select organization_id from app_public.${table}`)).rows.map((r) => r.organization_id);
  expect(await count(member.id, "organization_members")).toEqual([cast.a.org.id, cast.a.org.id, cast.a.org.id]);
  expect(await count(member.id, "api_keys")).toEqual([]);
  expect(await count(member.id, "audit_events")).toEqual([]);
  expect((await count(admin.id, "api_keys")).every((o) => o === cast.a.org.id)).toBe(true);
  expect((await count(admin.id, "audit_events")).length).toBeGreaterThan(0);
  expect((await count(admin.id, "audit_events")).every((o) => o === cast.a.org.id)).toBe(true);

  // team administration needs a person: keys cannot invite, create keys or change roles
  await expectCode(queryAsApiKey(db, admin.id, "select app_public.invite_member($1, 'x@example.com')", [cast.a.org.id]), "NOT_AUTHENTICATED");
  await expectCode(queryAsApiKey(db, admin.id, "select app_public.create_api_key($1, 'more')", [cast.a.org.id]), "NOT_AUTHENTICATED");
  await expectCode(
    queryAsApiKey(db, admin.id, "select app_public.change_member_role($1, $2, 'admin')", [cast.a.org.id, cast.a.member.userId]),
    "NOT_AUTHENTICATED",
  );

  await db.queryAs(cast.a.owner, "select app_public.revoke_api_key($1)", [admin.id]);
  expect(await ids(admin.id)).toEqual({ m: [], a: [], o: [], u: null });
});

test("users are unaffected by the API-key branch, and a user claim wins over a stray key claim", async () => {
  const key = await createKey(cast.a.admin, cast.a.org.id);
  const { rows } = await db.as(cast.b.member, async (client) => {
    await client.query("select set_config('jwt.claims.api_key_id', $1, true)", [key.id]);
    return client.query("select app_public.current_user_organization_ids() as ids");
  });
  expect(rows[0].ids).toEqual([cast.b.org.id]);
});

test("user, session and key ids come from the transaction's claims; empty claims are null", async () => {
  const ids = (settings: Record<string, string>) =>
    withSettings(db.auth, { role: "app_user", ...settings }, (c) =>
      c.query(`select app_public.current_user_id() as u, app_public.current_session_id() as s, (app_public."current_user"()).id as cu`),
    ).then((r) => r.rows[0]);
  expect(await ids({ "jwt.claims.user_id": cast.a.member.userId, "jwt.claims.session_id": cast.a.member.sessionId })).toEqual({
    u: cast.a.member.userId, s: cast.a.member.sessionId, cu: cast.a.member.userId,
  });
  expect(await ids({ "jwt.claims.user_id": "", "jwt.claims.session_id": "" })).toEqual({ u: null, s: null, cu: null });
  expect(await ids({})).toEqual({ u: null, s: null, cu: null });
  const { rows } = await db.owner.query("select app_hidden.current_api_key_id() as k");
  expect(rows[0].k).toBeNull();
  const key = await createKey(cast.a.admin, cast.a.org.id);
  const asKey = await withSettings(db.owner, { "jwt.claims.api_key_id": key.id }, (c) => c.query("select app_hidden.current_api_key_id() as k"));
  expect(asKey.rows[0].k).toBe(key.id);
});

test("session_is_live: the user's own session, not revoked, not expired", async () => {
  const user = await createUser(db);
  const other = await createUser(db);
  const live = async (sessionId: string, userId: string) =>
    (await db.owner.query("select app_hidden.session_is_live($1, $2) as live", [sessionId, userId])).rows[0].live;
  expect(await live(user.sessionId, user.userId)).toBe(true);
  expect(await live(user.sessionId, other.userId)).toBe(false); // someone else's session
  expect(await live("00000000-0000-7000-8000-000000000000", user.userId)).toBe(false);
  await db.owner.query("update app_private.sessions set expires_at = now() - interval '1 second' where id = $1", [other.sessionId]);
  expect(await live(other.sessionId, other.userId)).toBe(false);
  await db.queryAs(user, "select app_public.logout()");
  expect(await live(user.sessionId, user.userId)).toBe(false);
  // app roles may not probe sessions
  await expect(db.queryAs(cast.a.member, "select app_hidden.session_is_live($1, $2)", [user.sessionId, user.userId])).rejects.toMatchObject({ code: "42501" });
});

test("session_is_live records the use at most once a minute, and never waits for another request of the same session doing so", async () => {
  const user = await createUser(db);
  const lastUsed = async () =>
    (await db.owner.query("select last_used_at from app_private.sessions where id = $1", [user.sessionId])).rows[0].last_used_at as Date;
  await db.owner.query("update app_private.sessions set last_used_at = now() - interval '2 minutes' where id = $1", [user.sessionId]);
  const before = await lastUsed();
  // Request A records the use and holds the row until it ends.
  const a = await db.auth.connect();
  const b = await db.auth.connect();
  try {
    await a.query("begin");
    await a.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true), set_config('jwt.claims.session_id', $2, true)", [user.userId, user.sessionId]);
    await a.query("select app_hidden.start_request()");
    // Request B of the same session, meanwhile: it would wait for A's whole transaction on the
    // row lock; it goes on instead (lock_timeout turns a wait into an error here).
    await b.query("begin");
    await b.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true), set_config('jwt.claims.session_id', $2, true), set_config('lock_timeout', '2s', true)", [user.userId, user.sessionId]);
    await b.query("select app_hidden.start_request()");
    const { rows } = await b.query("select current_setting('tenantbase.organization_ids') as ids");
    expect(rows[0].ids).toBe("{}");
    await b.query("commit");
    await a.query("commit");
  } finally {
    await a.query("rollback").catch(() => {});
    await b.query("rollback").catch(() => {});
    a.release();
    b.release();
  }
  const after = await lastUsed();
  expect(after.getTime()).toBeGreaterThan(before.getTime());
  // used again within the minute: not written again
  await db.queryAs(user, "select 1");
  expect((await lastUsed()).getTime()).toBe(after.getTime());
});

test("current_user_organization_ids: a user's organizations at each role, without deleted ones", async () => {
  const ids = (who: any) =>
    db.queryAs(who, `select app_public.current_user_organization_ids() as m, app_public.current_user_organization_ids('admin') as a,
                            app_public.current_user_organization_ids('owner') as o`).then((r) => r.rows[0]);
  expect(await ids(cast.a.member)).toEqual({ m: [cast.a.org.id], a: [], o: [] });
  expect(await ids(cast.a.admin)).toEqual({ m: [cast.a.org.id], a: [cast.a.org.id], o: [] });
  expect(await ids(cast.b.owner)).toEqual({ m: [cast.b.org.id], a: [cast.b.org.id], o: [cast.b.org.id] });
  expect(await ids(null)).toEqual({ m: [], a: [], o: [] });
  const owner = await createUser(db);
  const org = (await db.queryAs(owner, "select id from app_public.create_organization('Soon Gone')")).rows[0].id;
  expect((await ids(owner)).m).toEqual([org]);
  await db.queryAs(owner, "select app_public.delete_organization($1)", [org]);
  expect(await ids(owner)).toEqual({ m: [], a: [], o: [] });
});
