// Generations notify their organization's channel on start and on every change, with ids only,
// at commit (a rollback sends nothing).

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { twoTenants } from "../../helpers/fixtures.ts";
import { listenInSql } from "../../helpers/realtime.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

test("start and complete notify tb:generations:<org> with the generation and project ids only", async () => {
  const { a, b } = await twoTenants(db);
  const listener = await listenInSql(db.rootUrl, [`tb:generations:${a.org.id}`, `tb:generations:${b.org.id}`]);
  try {
    const { rows } = await db.queryAs(a.member, "insert into app_public.projects (organization_id, name) values ($1, 'P') returning id", [a.org.id]);
    const project = rows[0].id;
    const started = await db.queryAs(a.member, "select id from app_public.start_generation($1, $2, 'image', 'm', '{\"prompt\": \"secret prompt\"}', 5, 'k1')", [a.org.id, project]);
    const id = started.rows[0].id;
    await db.queryAs(a.member, "select app_public.complete_generation($1, 2, '{\"url\": \"https://x\"}')", [id]);
    const received = await listener.flush();
    expect(received).toEqual([
      { channel: `tb:generations:${a.org.id}`, payload: { id, project_id: project } },
      { channel: `tb:generations:${a.org.id}`, payload: { id, project_id: project } },
    ]);
    expect(JSON.stringify(received)).not.toContain("secret prompt");
    listener.clear();
    // rolled back: nothing
    await db.as(a.member, async (client) => {
      await client.query("savepoint s");
      await client.query("select app_public.start_generation($1, $2, 'image', 'm', '{}', 1, 'k2')", [a.org.id, project]);
      await client.query("rollback to savepoint s");
    });
    expect(await listener.flush()).toEqual([]);
  } finally {
    await listener.end();
  }
});
