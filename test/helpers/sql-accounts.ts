// Accounts made in SQL the way register makes them (a real bcrypt hash), for the SQL-level tests
// of db/functions/020-accounts and 010-foundation/sessions.sql.

import { randomBytes } from "node:crypto";
import type { TestDatabase } from "./db.ts";
import type { TestUser } from "./fixtures.ts";

export async function registerInSql(db: TestDatabase, password = "correct horse", name = "Sql User"): Promise<TestUser & { password: string }> {
  const email = `sql-${randomBytes(5).toString("hex")}@example.com`;
  const { rows } = await db.queryAs(null, "select (t).sub as user_id, (t).session_id from app_public.register($1, $2, $3) t", [email, password, name]);
  return { userId: rows[0].user_id, sessionId: rows[0].session_id, email, password };
}

/** The error code a statement raised (SQLSTATE TB000, code in DETAIL), or null. */
export async function codeOf(promise: Promise<unknown>): Promise<string | null> {
  try {
    await promise;
    return null;
  } catch (error) {
    const e = error as { code?: string; detail?: string; message?: string };
    if (e.code === "TB000") return e.detail ?? null;
    throw error;
  }
}

export async function token(db: TestDatabase, purpose: string, userId: string, newEmail: string | null = null): Promise<string> {
  const { rows } = await db.owner.query("select token from app_private.issue_account_token($1, $2, $3)", [purpose, userId, newEmail]);
  return rows[0]?.token;
}
