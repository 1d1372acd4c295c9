// db/functions/010-foundation/names.sql: what a display name is, and the users trigger that
// applies it (010-foundation/users.sql) as each role would meet it.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createUser } from "../../helpers/fixtures.ts";
import { codeOf } from "../../helpers/codes.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const clean = async (value: string | null) =>
  (await db.queryAs(null, "select app_hidden.clean_name($1, 'Name') as name", [value])).rows[0].name;

test("trims spaces and invisible characters from both ends, keeps them inside", async () => {
  expect(await clean("  Ada Lovelace  ")).toBe("Ada Lovelace");
  expect(await clean("\u200b\ufeffAda\u00a0Lovelace\u2060 ")).toBe("Ada\u00a0Lovelace");
  expect(await clean("Zoë 👩‍💻")).toBe("Zoë 👩‍💻"); // the zero-width joiner inside an emoji stays
  expect(await clean("x".repeat(100))).toBe("x".repeat(100));
});

test.each([
  [null, "Name must be 1 to 100 characters."],
  ["", "Name must be 1 to 100 characters."],
  ["   ", "Name must be 1 to 100 characters."],
  ["\u200b\u200c", "Name must be 1 to 100 characters."],
  ["x".repeat(101), "Name must be 1 to 100 characters."],
  ["tab\there", "Name must not contain control characters."],
  ["a\u200d\u200db".replace(/[ab]/g, "\u2061"), "Name must be 1 to 100 characters."],
])("%j is INVALID_NAME: %s", async (value, message) => {
  const error = await db.queryAs(null, "select app_hidden.clean_name($1, 'Name')", [value]).catch((e) => e);
  expect({ code: error.code, detail: error.detail, message: error.message }).toEqual({ code: "TB000", detail: "INVALID_NAME", message });
});

test("a name made only of invisible characters inside visible-looking padding is refused", async () => {
  expect(await codeOf(db.queryAs(null, "select app_hidden.clean_name($1, 'Name')", ["\u00ad\u034f\u180e"]))).toBe("INVALID_NAME");
});

test("a user's name is cleaned on every write, by the user and by the owner role", async () => {
  const user = await createUser(db);
  await db.queryAs(user, "update app_public.users set name = $1 where id = $2", ["\u200b Grace \u200b", user.userId]);
  expect((await db.owner.query("select name from app_public.users where id = $1", [user.userId])).rows[0].name).toBe("Grace");
  expect(await codeOf(db.owner.query("update app_public.users set name = $1 where id = $2", ["\ufeff", user.userId]))).toBe("INVALID_NAME");
});
