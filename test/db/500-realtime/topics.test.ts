// Channel names: one per kind and organization, built from a uuid only, within PostgreSQL's
// 63-byte identifier limit; anything else is refused. Every app role may compute one (triggers
// fire as the caller).

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createUser } from "../../helpers/fixtures.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const ORG = "01a22c3e-643d-799d-a891-e9d4cc9844c3";

test("each kind has a channel of at most 63 bytes", async () => {
  const user = await createUser(db);
  for (const kind of ["generations", "credits", "organization"]) {
    const { rows } = await db.queryAs(user, "select app_hidden.realtime_topic($1, $2) as topic", [kind, "ffffffff-ffff-ffff-ffff-ffffffffffff"]);
    expect(rows[0].topic).toBe(`tb:${kind}:ffffffff-ffff-ffff-ffff-ffffffffffff`);
    expect(Buffer.byteLength(rows[0].topic)).toBeLessThanOrEqual(63);
  }
});

test("an unknown kind or a missing organization is refused", async () => {
  for (const [kind, org] of [["members", ORG], ["", ORG], [null, ORG], ["credits", null], ["credits; listen x", ORG]]) {
    await expect(db.owner.query("select app_hidden.realtime_topic($1, $2)", [kind, org])).rejects.toMatchObject({ code: "TB000", detail: "INVALID_INPUT" });
  }
  // and the organization is a uuid by type: text cannot get in
  await expect(db.owner.query("select app_hidden.realtime_topic('credits', $1)", ["x:y"])).rejects.toMatchObject({ code: "22P02" });
});
