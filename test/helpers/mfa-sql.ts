// Second factors made in SQL the way the server's MFA mutations make them (server/mfa/plugin.ts
// checks codes in Node; these tests stand in for a matched time step), for the SQL-level tests
// of db/functions/050-mfa.

import type { TestDatabase } from "./db.ts";
import type { TestUser } from "./fixtures.ts";

/** Adds and confirms a TOTP factor for the user (as the user), returning its id and recovery codes. */
export async function enrolTotpInSql(db: TestDatabase, user: TestUser, step = 1000): Promise<{ factorId: string; recoveryCodes: string[] }> {
  const { rows } = await db.queryAs(user, "select factor_id from app_hidden.add_totp_factor('v1.encrypted', 'Phone')");
  const factorId = rows[0].factor_id as string;
  const codes = await db.queryAs(user, "select app_hidden.confirm_totp_factor($1, $2) as code", [factorId, step]);
  return { factorId, recoveryCodes: codes.rows.map((r) => r.code as string) };
}

/** The challenge authenticate answered (its session_id claim), or null for a session. */
export async function signInInSql(db: TestDatabase, email: string, password: string): Promise<{ role: string; sub: string | null; session_id: string }> {
  const { rows } = await db.queryAs(null, "select (t).* from app_public.authenticate($1, $2) t", [email, password]);
  return rows[0];
}
