// Row ids (db/functions/010-foundation/ids.sql): UUIDv7 made in the database, version and variant
// bits as RFC 9562 says, the first 48 bits the creation time in Unix milliseconds, so ids made in
// later milliseconds sort after earlier ones.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createUser } from "../../helpers/fixtures.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

/** The Unix milliseconds in the first 48 bits of a UUIDv7. */
const millis = (id: string) => parseInt(id.replace(/-/g, "").slice(0, 12), 16);

test("version 7, variant 10, unique, and stamped with the clock of the moment it was made", async () => {
  const { rows } = await db.owner.query(
    `select app_hidden.uuid_generate_v7()::text as id,
            (extract(epoch from clock_timestamp()) * 1000)::bigint as after
     from generate_series(1, 2000)`,
  );
  const ids = rows.map((r) => r.id as string);
  expect(new Set(ids).size).toBe(2000);
  for (const [i, id] of ids.entries()) {
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    // made just before clock_timestamp() was read for the same row
    expect(Number(rows[i].after) - millis(id)).toBeGreaterThanOrEqual(0);
    expect(Number(rows[i].after) - millis(id)).toBeLessThan(1000);
  }
});

test("ids made in later milliseconds sort after earlier ones", async () => {
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    const { rows } = await db.owner.query("select app_hidden.uuid_generate_v7()::text as id, pg_sleep(0.002)");
    ids.push(rows[0].id);
  }
  expect([...ids].sort()).toEqual(ids);
  const { rows } = await db.owner.query("select (select array_agg(x order by x) from unnest($1::uuid[]) x)::text[] as sorted", [ids]);
  expect(rows[0].sorted).toEqual(ids); // PostgreSQL's uuid order agrees
});

test("tables take their ids from it, and every role may call it", async () => {
  const user = await createUser(db);
  expect(user.userId[14]).toBe("7");
  const { rows } = await db.owner.query("select (extract(epoch from created_at) * 1000)::bigint as at from app_public.users where id = $1", [user.userId]);
  expect(Math.abs(Number(rows[0].at) - millis(user.userId))).toBeLessThan(1000);
  for (const actor of [user, null]) {
    const { rows: made } = await db.queryAs(actor, "select app_hidden.uuid_generate_v7()::text as id");
    expect(made[0].id[14]).toBe("7");
  }
});
