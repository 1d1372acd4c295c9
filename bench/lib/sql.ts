// Raw SQL through `pg` exactly as PostGraphile runs a request: a transaction on an
// app_authenticator connection with the same transaction-local settings (role and claims).

import pg from "pg";

export function authPool(authUrl: string, max: number): pg.Pool {
  const pool = new pg.Pool({ connectionString: authUrl, max });
  pool.on("error", () => {});
  return pool;
}

export async function asUser<R extends pg.QueryResultRow = any>(pool: pg.Pool, userId: string, sessionId: string, sql: string, values: unknown[]): Promise<R[]> {
  const client = await pool.connect();
  try {
    await client.query("begin");
    await client.query(
      "select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true), set_config('jwt.claims.session_id', $2, true)",
      [userId, sessionId],
    );
    const { rows } = await client.query(sql, values);
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
