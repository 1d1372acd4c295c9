// myIdentities and unlinkIdentity (identities.sql): own identities only, never the last way to
// sign in, and unlinking ends the sessions that identity made.

import { randomBytes } from "node:crypto";
import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createUser } from "../../helpers/fixtures.ts";
import { codeOf, registerInSql } from "../../helpers/sql-accounts.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

async function link(userId: string, provider = "google"): Promise<string> {
  const { rows } = await db.owner.query(
    "select app_private.sign_in_with_identity($1, 'https://issuer.example.com', $2, null, false, null, $3) as id",
    [provider, `sub-${randomBytes(6).toString("hex")}`, userId],
  );
  return rows[0].id;
}

test("myIdentities lists my identities only; anonymous callers get none", async () => {
  const me = await createUser(db);
  const other = await createUser(db);
  const a = await link(me.userId, "google");
  const b = await link(me.userId, "github");
  await link(other.userId);
  const { rows } = await db.queryAs(me, "select * from app_public.my_identities()");
  expect(rows.map((r) => r.id)).toEqual([a, b]);
  expect(rows.map((r) => r.provider)).toEqual(["google", "github"]);
  expect((await db.queryAs(null, "select * from app_public.my_identities()")).rows).toEqual([]);
});

test("unlinkIdentity: another user's identity is NOT_FOUND and stays; anonymous is NOT_AUTHENTICATED", async () => {
  const me = await registerInSql(db);
  const other = await registerInSql(db);
  const theirs = await link(other.userId);
  expect(await codeOf(db.queryAs(me, "select app_public.unlink_identity($1)", [theirs]))).toBe("NOT_FOUND");
  expect(await codeOf(db.queryAs(null, "select app_public.unlink_identity($1)", [theirs]))).toBe("NOT_AUTHENTICATED");
  expect((await db.owner.query("select count(*)::int as n from app_private.identities where id = $1", [theirs])).rows[0].n).toBe(1);
});

test("the last way to sign in cannot be removed: LAST_SIGN_IN_METHOD; with a password or another identity it can", async () => {
  // an account made by a provider: no password, one identity
  const { rows } = await db.owner.query(
    "select app_private.sign_in_with_identity('google', 'https://issuer.example.com', $1, $2, true, 'Solo', null) as id",
    [`sub-${randomBytes(6).toString("hex")}`, `solo-${randomBytes(4).toString("hex")}@example.com`],
  );
  const only = rows[0].id;
  const userId = (await db.owner.query("select user_id from app_private.identities where id = $1", [only])).rows[0].user_id;
  const actor = { userId };
  expect(await codeOf(db.queryAs(actor, "select app_public.unlink_identity($1)", [only]))).toBe("LAST_SIGN_IN_METHOD");
  const second = await link(userId, "github");
  expect((await db.queryAs(actor, "select app_public.unlink_identity($1) as ok", [only])).rows[0].ok).toBe(true);
  expect(await codeOf(db.queryAs(actor, "select app_public.unlink_identity($1)", [second]))).toBe("LAST_SIGN_IN_METHOD");

  const withPassword = await registerInSql(db);
  const id = await link(withPassword.userId);
  expect((await db.queryAs(withPassword, "select app_public.unlink_identity($1) as ok", [id])).rows[0].ok).toBe(true);
});

test("unlinking ends the sessions that identity made, and only those", async () => {
  const me = await registerInSql(db);
  const id = await link(me.userId);
  const made = await db.owner.query(
    "insert into app_private.sessions (user_id, expires_at, method, identity_id) values ($1, now() + interval '1 day', 'provider', $2) returning id",
    [me.userId, id],
  );
  await db.queryAs(me, "select app_public.unlink_identity($1)", [id]);
  const { rows } = await db.owner.query("select id, revoked_at is not null as revoked from app_private.sessions where user_id = $1 order by created_at", [me.userId]);
  expect(Object.fromEntries(rows.map((r) => [r.id, r.revoked]))).toEqual({ [me.sessionId]: false, [made.rows[0].id]: true });
});

test("sign_in_method_count counts the password and each identity", async () => {
  const me = await registerInSql(db);
  const count = async () => (await db.owner.query("select app_private.sign_in_method_count($1) as n", [me.userId])).rows[0].n;
  expect(await count()).toBe(1);
  await link(me.userId);
  expect(await count()).toBe(2);
});

test("deleting an account forgets its identities, codes and link flows", async () => {
  const me = await registerInSql(db);
  const id = await link(me.userId);
  await db.owner.query("select app_private.issue_sign_in_code($1)", [id]);
  await db.queryAs(me, "select app_public.delete_account($1)", [me.password]);
  const { rows } = await db.owner.query(
    `select (select count(*)::int from app_private.identities where user_id = $1) as identities,
            (select count(*)::int from app_private.sign_in_codes where user_id = $1) as codes`,
    [me.userId],
  );
  expect(rows[0]).toEqual({ identities: 0, codes: 0 });
});
