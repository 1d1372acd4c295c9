// Jobs (db/functions/400-operations/jobs.sql): counted per task and outcome for /metrics, and a job
// queued inside a request carries that request's id in its payload.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createOrganization, createUser } from "../../helpers/fixtures.ts";
import { withSettings } from "../../../db/transaction.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const counts = async () =>
  Object.fromEntries((await db.owner.query("select task_identifier || ':' || outcome as k, count::int from app_private.job_counters")).rows.map((r) => [r.k, r.count]));
const payload = async (key: string) =>
  (await db.owner.query("select payload from graphile_worker._private_jobs where key = $1", [key])).rows[0]?.payload;

test("count_job counts each task and outcome apart, also from many connections at once", async () => {
  await db.owner.query("select app_private.count_job('send_email', 'completed')");
  await db.owner.query("select app_private.count_job('send_email', 'failed')");
  await Promise.all(Array.from({ length: 20 }, () => db.owner.query("select app_private.count_job('send_email', 'completed')")));
  expect(await counts()).toMatchObject({ "send_email:completed": 21, "send_email:failed": 1 });
  const user = await createUser(db);
  await expect(db.queryAs(user, "select app_private.count_job('x', 'completed')")).rejects.toMatchObject({ code: "42501" });
});

test("count_jobs adds several counts in one statement, repeated pairs summed, from many connections at once", async () => {
  await db.owner.query("select app_private.count_jobs($1, $2, $3)", [
    ["bulk_task", "bulk_task", "bulk_task", "other_task"],
    ["completed", "failed", "completed", "completed"],
    [3, 1, 2, 5],
  ]);
  await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      db.owner.query("select app_private.count_jobs($1, $2, $3)", [
        i % 2 ? ["bulk_task", "other_task"] : ["other_task", "bulk_task"],
        ["completed", "completed"],
        [1, 1],
      ]),
    ),
  );
  await db.owner.query("select app_private.count_jobs('{}', '{}', '{}')");
  expect(await counts()).toMatchObject({ "bulk_task:completed": 25, "bulk_task:failed": 1, "other_task:completed": 25 });
  await expect(db.owner.query("select app_private.count_jobs('{a}', '{completed}', '{1,2}')")).rejects.toMatchObject({ code: "22023" });
  const user = await createUser(db);
  await expect(db.queryAs(user, "select app_private.count_jobs('{x}', '{completed}', '{1}')")).rejects.toMatchObject({ code: "42501" });
});

test("a job queued while tenantbase.request_id is set carries it; others are left alone", async () => {
  const add = (settings: Record<string, string>, key: string, json: string) =>
    withSettings(db.owner, settings, (c) => c.query("select graphile_worker.add_job('noop', $1::json, job_key => $2)", [json, key]));
  await add({ "tenantbase.request_id": "req-123" }, "with-request", '{"a": 1}');
  await add({}, "cron", '{"a": 1}');
  await add({ "tenantbase.request_id": "req-456" }, "own-id", '{"requestId": "req-original"}');
  await add({ "tenantbase.request_id": "req-789" }, "array", "[1, 2]");
  expect(await payload("with-request")).toEqual({ a: 1, requestId: "req-123" });
  expect(await payload("cron")).toEqual({ a: 1 });
  expect(await payload("own-id")).toEqual({ requestId: "req-original" });
  expect(await payload("array")).toEqual([1, 2]);
});

test("a job queued by a member's request (an invitation's email) carries the request id", async () => {
  const owner = await createUser(db);
  const org = await createOrganization(db, owner, "Inviting");
  const { rows } = await withSettings(db.auth, { role: "app_user", "jwt.claims.user_id": owner.userId, "tenantbase.request_id": "req-invite" }, (c) =>
    c.query("select (r.invitation).id from app_public.invite_member($1, 'guest@example.com', 'member') r", [org.id]));
  expect(await payload(`invitation_email:${rows[0].id}`)).toMatchObject({ requestId: "req-invite" });
});
