// The credit account notifies its organization's channel when available or reserved changes,
// once per transaction however many entries it writes, and not for other updates.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { twoTenants } from "../../helpers/fixtures.ts";
import { listenInSql } from "../../helpers/realtime.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

test("reserve, release: one notification each, ids only; another tenant's channel hears nothing", async () => {
  const { a, b } = await twoTenants(db);
  const listener = await listenInSql(db.rootUrl, [`tb:credits:${a.org.id}`, `tb:credits:${b.org.id}`]);
  try {
    const reserved = await db.queryAs(a.member, "select id from app_public.reserve_credits($1, 10, 'r1', 600)", [a.org.id]);
    expect(await listener.flush()).toEqual([{ channel: `tb:credits:${a.org.id}`, payload: { organization_id: a.org.id } }]);
    listener.clear();
    // three changes in one transaction: one notification
    await db.as(a.member, async (client) => {
      await client.query("select app_public.release_credits($1, 'release-r1')", [reserved.rows[0].id]);
      await client.query("select app_public.reserve_credits($1, 3, 'r2', 600)", [a.org.id]);
      await client.query("select app_public.reserve_credits($1, 4, 'r3', 600)", [a.org.id]);
    });
    expect(await listener.flush()).toHaveLength(1);
    listener.clear();
    // an update that changes neither amount: none
    await db.owner.query("update app_public.credit_accounts set updated_at = now() where organization_id = $1", [a.org.id]);
    expect(await listener.flush()).toEqual([]);
  } finally {
    await listener.end();
  }
});
