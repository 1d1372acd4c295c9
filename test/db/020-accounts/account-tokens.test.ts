// app_private.issue_account_token / use_account_token: random, hashed, single use, expiring,
// replaced by a newer one, refused for another user; each refusal with its code.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { codeOf, registerInSql, token } from "../../helpers/sql-accounts.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

// app_private is the owner's: called as the owner with the caller's claims, as the SECURITY DEFINER
// mutations (verifyEmail, resetPassword) call it.
const use = async (actor: { userId: string } | null, purpose: string, t: string | null) => {
  const client = await db.owner.connect();
  try {
    await client.query("begin");
    await client.query("select set_config('jwt.claims.user_id', $1, true)", [actor?.userId ?? ""]);
    await client.query("select 1 from app_private.use_account_token($1, $2)", [[purpose], t]);
    await client.query("commit");
  } catch (error) {
    await client.query("rollback");
    throw error;
  } finally {
    client.release();
  }
};

test("app roles cannot call the token functions", async () => {
  await expect(db.queryAs(null, "select app_private.use_account_token('{verify_email}', $1)", ["0".repeat(64)])).rejects.toThrow(/permission denied/);
});

test("tokens are 64 hex characters, stored as their SHA-256 only, with the configured lifetimes", async () => {
  const u = await registerInSql(db);
  const t = await token(db, "reset_password", u.userId);
  expect(t).toMatch(/^[0-9a-f]{64}$/);
  const { rows } = await db.owner.query(
    "select token_hash = digest($2, 'sha256') as hashed, round(extract(epoch from expires_at - created_at)) as ttl from app_private.account_tokens where user_id = $1 and purpose = 'reset_password'",
    [u.userId, t],
  );
  expect(rows).toEqual([{ hashed: true, ttl: "3600" }]);
  const v = await db.owner.query("select round(extract(epoch from expires_at - created_at)) as ttl from app_private.account_tokens where user_id = $1 and purpose = 'verify_email'", [u.userId]);
  expect(v.rows).toEqual([]); // register queued the mail; the worker issues the token
  await token(db, "verify_email", u.userId);
  const v2 = await db.owner.query("select round(extract(epoch from expires_at - created_at)) as ttl from app_private.account_tokens where user_id = $1 and purpose = 'verify_email'", [u.userId]);
  expect(v2.rows).toEqual([{ ttl: String(3 * 86400) }]);
});

test("use: once; then TOKEN_USED; expired TOKEN_EXPIRED; replaced or malformed TOKEN_INVALID; another user's TOKEN_USER_MISMATCH", async () => {
  const a = await registerInSql(db);
  const b = await registerInSql(db);
  const first = await token(db, "reset_password", a.userId);
  const second = await token(db, "reset_password", a.userId);
  expect(await codeOf(use(null, "reset_password", first))).toBe("TOKEN_INVALID");
  expect(await codeOf(use(b, "reset_password", second))).toBe("TOKEN_USER_MISMATCH");
  expect(await codeOf(use(null, "verify_email", second))).toBe("TOKEN_INVALID");
  expect(await codeOf(use(null, "reset_password", second))).toBeNull();
  expect(await codeOf(use(null, "reset_password", second))).toBe("TOKEN_USED");
  const third = await token(db, "reset_password", a.userId);
  await db.owner.query("update app_private.account_tokens set expires_at = now() where user_id = $1", [a.userId]);
  expect(await codeOf(use(a, "reset_password", third))).toBe("TOKEN_EXPIRED");
  for (const bad of [null, "", "XYZ", "A".repeat(64), "0".repeat(64)]) expect(await codeOf(use(null, "reset_password", bad))).toBe("TOKEN_INVALID");
});

test("nothing is issued for a deleted account, an address already verified, or an unchanged email", async () => {
  const u = await registerInSql(db);
  expect(await token(db, "change_email", u.userId, u.email.toUpperCase())).toBeUndefined();
  await db.owner.query("update app_public.users set email_verified_at = now() where id = $1", [u.userId]);
  expect(await token(db, "verify_email", u.userId)).toBeUndefined();
  await db.queryAs(u, "select app_public.delete_account($1)", [u.password]);
  expect(await token(db, "reset_password", u.userId)).toBeUndefined();
});

test("prune_account_records removes tokens a week past expiry and counters of old windows", async () => {
  const u = await registerInSql(db);
  await token(db, "reset_password", u.userId);
  await db.owner.query("update app_private.account_tokens set expires_at = now() - interval '8 days' where user_id = $1", [u.userId]);
  await db.owner.query("insert into app_private.attempt_counters (action, scope, subject, window_started_at, attempts) values ('register', 'address', 'x', now() - interval '3 days', 1)");
  const { rows } = await db.owner.query("select app_private.prune_account_records() as n");
  expect(Number(rows[0].n)).toBeGreaterThanOrEqual(2);
  const left = await db.owner.query("select count(*)::int as n from app_private.account_tokens where user_id = $1", [u.userId]);
  expect(left.rows[0].n).toBe(0);
});
