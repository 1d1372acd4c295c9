// app_hidden.count_attempt / app_private.take_attempt: fixed windows per (action, scope, subject),
// TOO_MANY_ATTEMPTS with retryAfter over the limit, subjects hashed, concurrent attempts capped.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createUser } from "../../helpers/fixtures.ts";
import { codeOf } from "../../helpers/sql-accounts.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  await db.owner.query(`update app_private.account_settings set attempt_limits =
    '{"authenticate": {"email": {"max": 3, "seconds": 60}, "address": {"max": 5, "seconds": 60}}, "change_email": {"user": {"max": 2, "seconds": 60}}}'`);
});
afterAll(() => db?.drop());

const count = (email: string, address = "192.0.2.1") =>
  db.as(null, async (c) => {
    await c.query("select set_config('tenantbase.client_address', $1, true)", [address]);
    await c.query("select app_hidden.count_attempt('authenticate', $1)", [email]);
  });

test("per email: the (max+1)th attempt in the window is refused with retryAfter; case does not matter", async () => {
  for (let i = 0; i < 3; i++) await count(i === 1 ? "A@Example.com" : "a@example.com", `192.0.2.${10 + i}`);
  let error: any;
  try {
    await count("a@example.com", "192.0.2.50");
  } catch (e) {
    error = e;
  }
  expect(error.detail).toBe("TOO_MANY_ATTEMPTS");
  const extra = JSON.parse(error.hint);
  expect(extra.retryAfter).toBeGreaterThan(0);
  expect(extra.retryAfter).toBeLessThanOrEqual(60);
  // the window passes
  await db.owner.query("update app_private.attempt_counters set window_started_at = now() - interval '61 seconds'");
  await count("a@example.com", "192.0.2.51");
});

test("per client address, across emails", async () => {
  await db.owner.query("delete from app_private.attempt_counters");
  for (let i = 0; i < 5; i++) await count(`x${i}@example.com`, "198.51.100.7");
  expect(await codeOf(count("y@example.com", "198.51.100.7"))).toBe("TOO_MANY_ATTEMPTS");
  expect(await codeOf(count("y@example.com", "198.51.100.8"))).toBeNull();
});

test("per user, for signed-in actions; unlimited actions and scopes are not counted", async () => {
  const user = await createUser(db);
  for (let i = 0; i < 2; i++) await db.queryAs(user, "select app_hidden.count_attempt('change_email', null)");
  expect(await codeOf(db.queryAs(user, "select app_hidden.count_attempt('change_email', null)"))).toBe("TOO_MANY_ATTEMPTS");
  for (let i = 0; i < 10; i++) await db.queryAs(user, "select app_hidden.count_attempt('resend_verification_email', null)");
  await expect(db.queryAs(null, "select app_hidden.count_attempt('no_such_action', null)")).rejects.toThrow(/unknown attempt action/);
});

test("30 concurrent attempts on 30 connections: exactly max pass", async () => {
  await db.owner.query("delete from app_private.attempt_counters");
  const results = await Promise.all(Array.from({ length: 30 }, (_, i) => codeOf(count("race@example.com", `203.0.113.${i}`))));
  expect(results.filter((r) => r === null)).toHaveLength(3);
  expect(results.filter((r) => r === "TOO_MANY_ATTEMPTS")).toHaveLength(27);
});

test("subjects are SHA-256 digests; app roles cannot read the counters", async () => {
  const { rows } = await db.owner.query("select subject from app_private.attempt_counters");
  for (const r of rows) expect(r.subject).toMatch(/^[0-9a-f]{64}$/);
  await expect(db.queryAs(null, "select * from app_private.attempt_counters")).rejects.toThrow(/permission denied/);
});
