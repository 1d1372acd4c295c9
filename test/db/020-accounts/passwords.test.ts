// What a password must be (8 characters to 72 bytes), how it is checked (same bcrypt work for
// unknown users, never matching over 72 bytes), and changePassword as the signed-in user.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { codeOf, registerInSql } from "../../helpers/sql-accounts.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

test("acceptable: 8 characters up to 72 bytes, counted in UTF-8", async () => {
  const check = (p: string | null) => codeOf(db.owner.query("select app_private.assert_acceptable_password($1)", [p]));
  expect(await check(null)).toBe("WEAK_PASSWORD");
  expect(await check("seven77")).toBe("WEAK_PASSWORD");
  expect(await check("eight888")).toBeNull();
  expect(await check("a".repeat(72))).toBeNull();
  expect(await check("a".repeat(73))).toBe("WEAK_PASSWORD");
  expect(await check("é".repeat(36))).toBeNull();
  expect(await check("é".repeat(36) + "x")).toBe("WEAK_PASSWORD");
  expect(await check("€".repeat(25))).toBe("WEAK_PASSWORD"); // 75 bytes in 25 characters
});

test("password_matches: right, wrong, unknown user, over 72 bytes", async () => {
  const u = await registerInSql(db, "é".repeat(36));
  const matches = async (userId: string | null, p: string) =>
    (await db.owner.query("select app_private.password_matches($1, $2) as ok", [userId, p])).rows[0].ok;
  expect(await matches(u.userId, "é".repeat(36))).toBe(true);
  expect(await matches(u.userId, "é".repeat(36) + "suffix")).toBe(false);
  expect(await matches(u.userId, "wrong password")).toBe(false);
  expect(await matches(null, "é".repeat(36))).toBe(false);
});

test("changePassword: signed in, current password, acceptable new one; other sessions end", async () => {
  const u = await registerInSql(db);
  const other = await db.owner.query(
    "insert into app_private.sessions (user_id, expires_at) values ($1, now() + interval '1 day') returning id",
    [u.userId],
  );
  expect(await codeOf(db.queryAs(null, "select app_public.change_password('x', 'new password')"))).toBe("NOT_AUTHENTICATED");
  expect(await codeOf(db.queryAs(u, "select app_public.change_password('wrong one', 'new password')"))).toBe("WRONG_PASSWORD");
  expect(await codeOf(db.queryAs(u, "select app_public.change_password($1, 'short')", [u.password]))).toBe("WEAK_PASSWORD");
  await db.queryAs(u, "select app_public.change_password($1, 'new password')", [u.password]);
  const live = async (id: string) => (await db.owner.query("select app_hidden.session_is_live($1, $2) as l", [id, u.userId])).rows[0].l;
  expect(await live(u.sessionId)).toBe(true);
  expect(await live(other.rows[0].id)).toBe(false);
  expect((await db.owner.query("select app_private.password_matches($1, 'new password') as ok", [u.userId])).rows[0].ok).toBe(true);
});
