// How a business rule reaches the client (db/functions/010-foundation/errors.sql): raise_error is
// the one helper; it raises SQLSTATE TB000 with the public code in DETAIL, which server/errors.ts
// passes through as extensions.code. Nothing else in the database raises TB000.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createUser } from "../../helpers/fixtures.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

async function raised(run: (sql: string) => Promise<unknown>) {
  try {
    await run("select app_hidden.raise_error('SOME_CODE', 'Something is not allowed.')");
  } catch (error: any) {
    return { code: error.code, detail: error.detail, message: error.message };
  }
  throw new Error("raise_error returned");
}

test("raise_error raises SQLSTATE TB000 with the code in DETAIL and the message as given, for every role", async () => {
  const user = await createUser(db);
  const expected = { code: "TB000", detail: "SOME_CODE", message: "Something is not allowed." };
  expect(await raised((sql) => db.owner.query(sql))).toEqual(expected);
  expect(await raised((sql) => db.queryAs(user, sql))).toEqual(expected);
  expect(await raised((sql) => db.queryAs(null, sql))).toEqual(expected);
});

test("a business error rolls back the transaction it happens in", async () => {
  const client = await db.owner.connect();
  try {
    await client.query("begin");
    await client.query("create temporary table t (x int)");
    await client.query("insert into t values (1)");
    await expect(client.query("insert into t select 2 from (select app_hidden.raise_error('NOPE', 'no')) e")).rejects.toMatchObject({ code: "TB000" });
    await expect(client.query("select * from t")).rejects.toMatchObject({ code: "25P02" }); // the transaction is aborted
    await client.query("rollback");
  } finally {
    client.release();
  }
});

test("other errors do not carry TB000, and no function but raise_error raises it", async () => {
  await expect(db.owner.query("select 1 / 0")).rejects.toMatchObject({ code: "22012" });
  const { rows } = await db.owner.query(
    `select p.oid::regprocedure::text as fn from pg_proc p join pg_namespace n on n.oid = p.pronamespace
     where n.nspname in ('app_public', 'app_hidden', 'app_private') and p.prosrc ~* 'errcode\\s*=\\s*''TB000'''`,
  );
  // The two helpers of errors.sql: the code alone, or with extra extensions (retryAfter). (Catching
  // TB000, as identity-linking.sql does around clean_name, raises nothing.)
  expect(rows.map((r) => r.fn)).toEqual(["app_hidden.raise_error(text,text)", "app_hidden.raise_error_with(text,text,jsonb)"]);
});
