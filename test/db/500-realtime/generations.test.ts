// Generations notify their organization's channel on start and on every change, at commit (a
// rollback sends nothing), with the ids and the row as the change left it (issue 20, item 9);
// a row too large for NOTIFY goes with its ids only.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { twoTenants } from "../../helpers/fixtures.ts";
import { listenInSql } from "../../helpers/realtime.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const rowStatus = (row: string) => db.root.query("select ($1::text::app_public.generations).status::text as s", [row]).then((r) => r.rows[0].s);

test("start and complete notify tb:generations:<org> with the ids and each row version", async () => {
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
      { channel: `tb:generations:${a.org.id}`, payload: { id, project_id: project, row: expect.any(String) } },
      { channel: `tb:generations:${a.org.id}`, payload: { id, project_id: project, row: expect.any(String) } },
    ]);
    // each notification holds the row as that change left it, even though both are read after the second commit
    expect(await rowStatus(received[0].payload.row)).toBe("running");
    expect(await rowStatus(received[1].payload.row)).toBe("succeeded");
    listener.clear();
    // a row too large to carry (NOTIFY takes at most 8,000 bytes): the ids only
    const big = JSON.stringify({ prompt: "x".repeat(9000) });
    const large = await db.queryAs(a.member, "select id from app_public.start_generation($1, $2, 'image', 'm', $3, 1, 'k-big')", [a.org.id, project, big]);
    expect(await listener.flush()).toEqual([{ channel: `tb:generations:${a.org.id}`, payload: { id: large.rows[0].id, project_id: project } }]);
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
