// app_private.queue_account_email: one send_account_email job per mail, in the caller's
// transaction (rolled back with it), a repeat replacing an unsent one.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createUser } from "../../helpers/fixtures.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const jobs = async (userId: string) =>
  (
    await db.owner.query(
      `select j.payload, j.key from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id
       where t.identifier = 'send_account_email' and j.payload->>'userId' = $1 order by j.id`,
      [userId],
    )
  ).rows;

test("queued with a job key per kind and user; a repeat replaces; notices are never merged", async () => {
  const u = await createUser(db);
  await db.owner.query("select app_private.queue_account_email('reset_password', $1)", [u.userId]);
  await db.owner.query("select app_private.queue_account_email('reset_password', $1)", [u.userId]);
  await db.owner.query("select app_private.queue_account_email('email_changed', $1, '{\"oldEmail\": \"a@b.co\", \"newEmail\": \"c@d.co\"}')", [u.userId]);
  await db.owner.query("select app_private.queue_account_email('email_changed', $1, '{\"oldEmail\": \"c@d.co\", \"newEmail\": \"e@f.co\"}')", [u.userId]);
  const rows = await jobs(u.userId);
  expect(rows.map((r) => [r.payload.kind, r.key])).toEqual([
    ["reset_password", `account_email:reset_password:${u.userId}`],
    ["email_changed", null],
    ["email_changed", null],
  ]);
  await expect(db.owner.query("select app_private.queue_account_email('spam', $1)", [u.userId])).rejects.toThrow(/unknown account email/);
});

test("a rolled-back change sends nothing", async () => {
  const u = await createUser(db);
  const client = await db.owner.connect();
  try {
    await client.query("begin");
    await client.query("select app_private.queue_account_email('verify_email', $1)", [u.userId]);
    await client.query("rollback");
  } finally {
    client.release();
  }
  expect(await jobs(u.userId)).toEqual([]);
});

test("app roles cannot queue mails themselves", async () => {
  const u = await createUser(db);
  await expect(db.queryAs(u, "select app_private.queue_account_email('reset_password', $1)", [u.userId])).rejects.toThrow(/permission denied/);
});
