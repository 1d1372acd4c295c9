// One transaction on a pooled connection with transaction-local settings (role, claims), the
// way PostGraphile runs a request: the settings are applied in one statement, then
// app_hidden.start_request() checks the session (INVALID_TOKEN) and reads the caller's
// organizations for the policies (db/functions/010-foundation/request.sql); all of it vanishes at
// commit or rollback, so the connection goes back to the pool clean. Used where Node code must
// act as the caller outside PostGraphile (the Stripe mutations) and by the tests.

import type pg from "pg";

export type TransactionSettings = Record<string, string | null | undefined>;

export async function withSettings<T>(
  pool: pg.Pool,
  settings: TransactionSettings,
  fn: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query("begin");
    await client.query("select set_config(s.key, coalesce(s.value, ''), true) from json_each_text($1::json) s", [
      JSON.stringify(settings),
    ]);
    // Acting as an app role: the request's start (an owner connection with claims needs none).
    if (settings.role) await client.query("select app_hidden.start_request()");
    const result = await fn(client);
    await client.query("commit");
    return result;
  } catch (error) {
    await client.query("rollback").catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}
