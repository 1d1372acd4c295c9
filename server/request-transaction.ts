// How PostGraphile opens a request's transaction. The stock pg adaptor runs `begin`, then
// `select set_config(…)` for the caller's settings, then the request's SQL, then `commit`, and
// tenantbase used to check the token's session with a separate query on a second pool before that.
// Here the start is one round trip on the request's own connection:
//
//   begin; select set_config(…) from json_array_elements('<settings>'::json) el; select app_hidden.start_request()
//
// start_request() (db/functions/010-foundation/request.sql) refuses an ended session or key with
// INVALID_TOKEN (server/app.ts turns that into HTTP 401) and reads the caller's organizations
// into the settings the policies compare with. The settings travel as one escaped literal: the
// simple query protocol takes several statements in one message but no parameters.
//
// Everything else (queries, prepared statements, savepoints, notices) is the stock adaptor's,
// driven through its "client already in a transaction" mode; the transaction is ended here.

import type pg from "pg";
import * as pgAdaptor from "postgraphile/adaptors/pg";
import { escapeLiteral } from "pg";

type WithPgClient = ReturnType<typeof pgAdaptor.createWithPgClient>;

const $$configured = Symbol("tenantbase:configured");

/** The one statement that opens a request transaction for these settings (check: false only for benchmarks' baselines). */
export function startStatement(pgSettings: Record<string, string | null | undefined>, check = true): string {
  const entries = Object.entries(pgSettings).filter((entry): entry is [string, string] => entry[1] != null);
  return (
    "begin; select set_config(el->>0, el->>1, true) from json_array_elements(" +
    escapeLiteral(JSON.stringify(entries)) +
    "::json) el" +
    (check ? "; select app_hidden.start_request()" : "")
  );
}

function requestWithPgClient(pool: pg.Pool): WithPgClient {
  const withPgClient = (async (pgSettings: Record<string, string> | null, callback: (client: any) => any) => {
    const client = (await pool.connect()) as pg.PoolClient & { [$$configured]?: true };
    let broken: Error | undefined;
    try {
      if (!client[$$configured]) {
        client[$$configured] = true;
        // As the stock adaptor does: JIT optimisation costs more than it saves on API queries.
        await client.query("set jit_optimize_above_cost = -1");
      }
      // Without settings (never the case for API requests): no transaction, as the stock adaptor.
      if (!pgSettings || Object.keys(pgSettings).length === 0) {
        return await pgAdaptor.makeWithPgClientViaPgClientAlreadyInTransaction(client, false)(null, callback);
      }
      await client.query(startStatement(pgSettings)).catch(async (error) => {
        await client.query("rollback").catch((e) => (broken = e));
        throw error;
      });
      let result;
      try {
        result = await pgAdaptor.makeWithPgClientViaPgClientAlreadyInTransaction(client, true)(null, callback);
      } catch (error) {
        await client.query("rollback").catch((e) => (broken = e));
        throw error;
      }
      await client.query("commit");
      return result;
    } finally {
      // A connection whose rollback failed (it broke mid-request) goes away, not back to the pool.
      client.release(broken);
    }
  }) as WithPgClient;
  withPgClient.release = () => {};
  return withPgClient;
}

/** makePgService, with the request transaction above for API requests. */
export function makeRequestPgService(options: Parameters<typeof pgAdaptor.makePgService>[0] & { pool: pg.Pool }) {
  const service = pgAdaptor.makePgService(options);
  const pool = options.pool;
  return {
    ...service,
    adaptor: {
      ...service.adaptor,
      createWithPgClient(settings: any, variant?: "SUPERUSER" | string | null) {
        // Introspection at start-up (variant SUPERUSER, or no pool given) keeps the stock path.
        if (variant === "SUPERUSER" || settings?.pool !== pool) return pgAdaptor.createWithPgClient(settings, variant as any);
        return requestWithPgClient(pool);
      },
    },
  };
}
