// Raw SQL through `pg` exactly as PostGraphile runs a request: a transaction on an
// app_authenticator connection opened with the same statement the server sends (begin, the
// transaction-local role and claims, app_hidden.start_request(): one round trip), the query as a
// named prepared statement (as grafast sends it), commit.

import { createHash } from "node:crypto";
import pg from "pg";
import { startStatement } from "../../server/request-transaction.ts";

/** The statement as a named prepared statement, as grafast runs its queries: parsed and planned once per connection. */
function prepared(text: string, values: unknown[]): pg.QueryConfig {
  return { name: "bench_" + createHash("sha1").update(text).digest("hex").slice(0, 16), text, values };
}

export function authPool(authUrl: string, max: number): pg.Pool {
  const pool = new pg.Pool({ connectionString: authUrl, max });
  pool.on("error", () => {});
  return pool;
}

export async function asUser<R extends pg.QueryResultRow = any>(pool: pg.Pool, userId: string, sessionId: string, sql: string, values: unknown[]): Promise<R[]> {
  const client = await pool.connect();
  try {
    await client.query(startStatement({ role: "app_user", "jwt.claims.user_id": userId, "jwt.claims.session_id": sessionId }));
    const { rows } = await client.query(prepared(sql, values));
    await client.query("commit");
    return rows;
  } catch (error) {
    await client.query("rollback").catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

/**
 * The same SQL as the owner role (no RLS) with the same round trips: `begin` and the claims in one
 * message, the query, commit. withCheck: also run start_request() (the session and membership
 * lookups), as an application without RLS must do before it trusts an organization id;
 * switchRole: with a transaction-local role switch too (what the RLS way pays for its role).
 */
export async function asOwner<R extends pg.QueryResultRow = any>(pool: pg.Pool, userId: string, sessionId: string, sql: string, values: unknown[], withCheck = false, switchRole = false): Promise<R[]> {
  const client = await pool.connect();
  try {
    // switchRole: also switch to the owner role itself, transaction-locally, as the server switches to app_user
    const role = switchRole ? { role: "app_owner" } : {};
    await client.query(startStatement({ ...role, "jwt.claims.user_id": userId, "jwt.claims.session_id": sessionId }, withCheck));
    const { rows } = await client.query(prepared(sql, values));
    await client.query("commit");
    return rows;
  } catch (error) {
    await client.query("rollback").catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

export interface BenchMember {
  n: number;
  organizationId: string;
  userId: string;
  sessionId: string;
}

export async function benchMembers(ownerUrl: string): Promise<BenchMember[]> {
  const client = new pg.Client({ connectionString: ownerUrl });
  await client.connect();
  try {
    const { rows } = await client.query(`
      select b.n, b.organization_id, b.user_id, (select s.id from app_private.sessions s where s.user_id = b.user_id order by s.id limit 1) as session_id
      from app_private.bench_org b order by b.n`);
    return rows.map((r) => ({ n: r.n, organizationId: r.organization_id, userId: r.user_id, sessionId: r.session_id }));
  } finally {
    await client.end();
  }
}
