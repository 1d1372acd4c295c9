// Accounts (db/functions/010-foundation/users.sql): register and the normal form of an email; and
// app_public.users under RLS, as each role.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { twoTenants, createUser } from "../../helpers/fixtures.ts";
import { expectCode } from "../../helpers/team.ts";

let db: TestDatabase;
let cast: Awaited<ReturnType<typeof twoTenants>>;
beforeAll(async () => {
  db = await createTestDatabase();
  cast = await twoTenants(db);
});
afterAll(() => db?.drop());

test("a user sees themselves and the members of their organizations, nobody else", async () => {
  const { rows } = await db.queryAs(cast.a.member, "select id from app_public.users order by id");
  const expected = [cast.a.owner, cast.a.admin, cast.a.member].map((u) => u.userId).sort();
  expect(rows.map((r) => r.id).sort()).toEqual(expected);
});

test("a user in no organization sees only their own row", async () => {
  const loner = await createUser(db);
  const { rows } = await db.queryAs(loner, "select id from app_public.users");
  expect(rows).toEqual([{ id: loner.userId }]);
});

test("anonymous sees no users", async () => {
  const { rows } = await db.queryAs(null, "select id from app_public.users");
  expect(rows).toEqual([]);
});

test("a user may rename only themselves", async () => {
  const self = await db.queryAs(cast.a.member, "update app_public.users set name = 'Renamed' where id = $1", [cast.a.member.userId]);
  expect(self.rowCount).toBe(1);
  const colleague = await db.queryAs(cast.a.member, "update app_public.users set name = 'Hacked' where id = $1", [cast.a.owner.userId]);
  expect(colleague.rowCount).toBe(0);
  const stranger = await db.queryAs(cast.a.member, "update app_public.users set name = 'Hacked' where id = $1", [cast.b.owner.userId]);
  expect(stranger.rowCount).toBe(0);
  const { rows } = await db.owner.query("select name from app_public.users where id = any($1)", [[cast.a.owner.userId, cast.b.owner.userId]]);
  expect(rows.map((r) => r.name)).not.toContain("Hacked");
});

test("users cannot change their email, insert users or delete users directly", async () => {
  await expect(db.queryAs(cast.a.member, "update app_public.users set email = 'x@y.zz' where id = $1", [cast.a.member.userId])).rejects.toThrow(/permission denied/);
  await expect(db.queryAs(cast.a.member, "insert into app_public.users (email, name) values ('n@e.ww', 'N')")).rejects.toThrow(/permission denied/);
  await expect(db.queryAs(cast.a.member, "delete from app_public.users where id = $1", [cast.b.member.userId])).rejects.toThrow(/permission denied/);
});

test("app roles cannot read password hashes or sessions", async () => {
  await expect(db.queryAs(cast.a.owner, "select * from app_private.user_secrets")).rejects.toThrow(/permission denied/);
  await expect(db.queryAs(cast.a.owner, "select * from app_private.sessions")).rejects.toThrow(/permission denied/);
  await expect(db.queryAs(null, "select * from app_private.sessions")).rejects.toThrow(/permission denied/);
});

describe("register", () => {
  const register = (email: unknown, password: unknown, name: unknown) =>
    db.queryAs(null, "select (t).* from app_public.register($1, $2, $3) t", [email, password, name]).then((r) => r.rows[0]);
  const users = async () => (await db.owner.query("select count(*)::int as n from app_public.users")).rows[0].n;

  test("anonymous callers sign up: the email in normal form, the password only as a bcrypt hash, a live session", async () => {
    const token = await register("  Ada.Lovelace@Example.COM ", "correct horse", "  Ada  ");
    expect(token).toMatchObject({ role: "app_user" });
    const { rows } = await db.owner.query(
      `select u.email::text, u.name, s.password_hash, ss.user_id as session_user, ss.expires_at
       from app_public.users u join app_private.user_secrets s on s.user_id = u.id join app_private.sessions ss on ss.id = $2
       where u.id = $1`,
      [token.sub, token.session_id],
    );
    expect(rows[0]).toMatchObject({ email: "ada.lovelace@example.com", name: "Ada", session_user: token.sub });
    expect(rows[0].password_hash).toMatch(/^\$2a\$10\$/);
    expect(rows[0].password_hash).not.toContain("correct horse");
    expect(Number(token.exp)).toBe(Math.round(rows[0].expires_at.getTime() / 1000));
    const { rows: normal } = await db.owner.query("select app_hidden.normalize_email('  MiXed@Case.Org ') as e");
    expect(normal[0].e).toBe("mixed@case.org");
  });

  test("bad input and a taken email are refused with a code, nothing written", async () => {
    await register("taken@example.com", "password123", "First");
    const before = await users();
    for (const email of ["", "no-at-sign", "a@b", "two@@example.com", "sp ace@example.com", `${"a".repeat(250)}@example.com`, null]) {
      await expectCode(register(email, "password123", "N"), "INVALID_EMAIL");
    }
    await expectCode(register("TAKEN@example.com ", "password123", "Second"), "EMAIL_TAKEN");
    await expectCode(register("short@example.com", "1234567", "N"), "WEAK_PASSWORD");
    await expectCode(register("long@example.com", "x".repeat(73), "N"), "WEAK_PASSWORD");
    await expectCode(register("null@example.com", null, "N"), "WEAK_PASSWORD");
    for (const name of ["", "   ", "x".repeat(101), null]) await expectCode(register("name@example.com", "password123", name), "INVALID_NAME");
    expect(await users()).toBe(before);
    // 72 characters is bcrypt's limit, and allowed
    await register("exactly72@example.com", "x".repeat(72), "Long Password");
  });
});
