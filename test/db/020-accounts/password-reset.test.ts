// forgotPassword (one answer for every address) and resetPassword (single use, every session
// revoked, a fresh session; concurrent uses: one wins).

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { codeOf, registerInSql, token } from "../../helpers/sql-accounts.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

test("forgot_password answers true for known, unknown, malformed and null addresses, queuing the same job for each", async () => {
  const u = await registerInSql(db);
  for (const e of [u.email, "nobody@example.com", "garbage", null, "x".repeat(5000)]) {
    const { rows } = await db.queryAs(null, "select app_public.forgot_password($1) as ok", [e]);
    expect(rows[0].ok).toBe(true);
  }
  const { rows } = await db.owner.query(
    `select length(j.payload->>'email') as len from graphile_worker._private_jobs j join graphile_worker._private_tasks k on k.id = j.task_id
     where k.identifier = 'send_account_email' and j.payload->>'kind' = 'reset_password' order by j.id`,
  );
  expect(rows.map((r) => r.len)).toEqual([u.email.length, "nobody@example.com".length, "garbage".length, 320]);
  // the worker finds the account or sends nothing
  expect((await db.owner.query("select * from app_private.issue_reset_token('nobody@example.com')")).rows).toEqual([]);
  expect((await db.owner.query("select email from app_private.issue_reset_token($1)", [u.email.toUpperCase()])).rows).toEqual([{ email: u.email }]);
});

test("reset: every session revoked, a new one returned; 12 concurrent uses of one token: one wins", async () => {
  const u = await registerInSql(db);
  const t = await token(db, "reset_password", u.userId);
  const results = await Promise.all(
    Array.from({ length: 12 }, (_, i) => db.queryAs(null, "select (app_public.reset_password($1, $2)).session_id as s", [t, `new password ${i}`]).then((r) => r.rows[0].s, (e) => e.detail)),
  );
  const winners = results.filter((r) => r !== "TOKEN_USED");
  expect(winners).toHaveLength(1);
  const { rows } = await db.owner.query("select id, revoked_at is null as live from app_private.sessions where user_id = $1 order by created_at", [u.userId]);
  expect(rows.map((r) => [r.id === winners[0], r.live])).toEqual([
    [false, false],
    [true, true],
  ]);
});
