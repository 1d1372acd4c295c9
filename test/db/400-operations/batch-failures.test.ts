// db/functions/400-operations/batch-failures.sql: one organization's failure in a batch is
// counted for /metrics and reported to the worker as a WARNING with JSON details.

import pg from "pg";
import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { organizationFailure } from "../../../workers/batch.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

test("record_organization_failure counts the failure and raises a WARNING the worker can read", async () => {
  const client = new pg.Client({ connectionString: db.ownerUrl });
  await client.connect();
  const notices: { message?: string; detail?: string }[] = [];
  client.on("notice", (notice) => notices.push(notice));
  try {
    const id = "00000000-0000-7000-8000-000000000001";
    await client.query("select app_private.record_organization_failure('some_task', $1, 'P0001', $2)", [id, "x".repeat(800)]);
    await client.query("select app_private.record_organization_failure('some_task', $1, '40001', 'again')", [id]);
    const failures = notices.map(organizationFailure);
    expect(failures).toEqual([
      { task: "some_task", organizationId: id, code: "P0001", message: "x".repeat(500) },
      { task: "some_task", organizationId: id, code: "40001", message: "again" },
    ]);
    const { rows } = await client.query("select count::int from app_private.job_counters where task_identifier = 'some_task' and outcome = 'organization_failed'");
    expect(rows).toEqual([{ count: 2 }]);
  } finally {
    await client.end();
  }
});

test("other notices are not failures; app roles cannot record failures", async () => {
  expect(organizationFailure({ message: "something else", detail: "{}" })).toBeNull();
  expect(organizationFailure({ message: "organization_failed", detail: "not json" })).toBeNull();
  await expect(
    db.queryAs(null, "select app_private.record_organization_failure('t', null, 'P0001', 'm')"),
  ).rejects.toMatchObject({ code: "42501" });
});
