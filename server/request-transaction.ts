// How PostGraphile opens a request's transaction. The stock pg adaptor runs `begin`, then
// `select set_config(…)` for the caller's settings, then the request's SQL, then `commit`, and
// tenantbase used to check the token's session with a separate query on a second pool before that.
// Here the start is one round trip on the request's own connection:
//
//   begin; select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', '…', true), …; select app_hidden.start_request()
//
// start_request() (db/functions/010-foundation/request.sql) refuses an ended session or key with
// INVALID_TOKEN (server/app.ts turns that into HTTP 401) and reads the caller's organizations
// into the settings the policies compare with. The simple query protocol takes several
// statements in one message but no parameters, so each value travels as an escaped literal
// (names are the server's own). One set_config per setting, not one call over
// json_array_elements('<settings>'): PostgreSQL plans a list of function calls with literal
// arguments for next to nothing, while the set-returning form cost about 20 µs of backend CPU
// per request more (docs/benchmarks.md). A prepared statement would need a round trip of its
// own after `begin`, which costs more than the planning it saves.
//
// Everything else (queries, prepared statements, savepoints, notices) is the stock adaptor's,
// driven through its "client already in a transaction" mode; the transaction is ended here.

import type pg from "pg";
import * as pgAdaptor from "postgraphile/adaptors/pg";
import { escapeLiteral } from "pg";
import { chargeResponseBudget, checkResponseBudget, RESPONSE_BUDGET, type ResponseBudget } from "./graphql-limits.ts";

type WithPgClient = ReturnType<typeof pgAdaptor.createWithPgClient>;

const $$configured = Symbol("tenantbase:configured");

const SETTING_NAME = /^[a-z_][a-z0-9_.]*$/;

/** The one statement that opens a request transaction for these settings (check: false only for benchmarks' baselines). */
export function startStatement(pgSettings: Record<string, string | null | undefined>, check = true): string {
  const calls: string[] = [];
  for (const name in pgSettings) {
    const value = pgSettings[name];
    if (value == null) continue;
    // Names come from the server (server/preset.ts), never from a client; refuse anything else loudly.
    if (!SETTING_NAME.test(name)) throw new Error(`not a setting name: ${JSON.stringify(name)}`);
    calls.push(`set_config('${name}', ${escapeLiteral(value)}, true)`);
  }
  return (calls.length ? "begin; select " + calls.join(", ") : "begin") + (check ? "; select app_hidden.start_request()" : "");
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
      // An HTTP request's queries are counted against its response budget (server/graphql-limits.ts).
      const budget = (pgSettings as { [RESPONSE_BUDGET]?: ResponseBudget })[RESPONSE_BUDGET];
      let result;
      try {
        result = await pgAdaptor.makeWithPgClientViaPgClientAlreadyInTransaction(client, true)(
          null,
          budget ? (pgClient: any) => callback(budgeted(pgClient, budget)) : callback,
        );
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

/** The adaptor's client, with each query's rows (in savepoints too) charged to the request's response budget. */
function budgeted(pgClient: any, budget: ResponseBudget): any {
  return Object.assign(Object.create(pgClient), {
    async query(...args: any[]) {
      checkResponseBudget(budget);
      const result = await pgClient.query(...args);
      chargeResponseBudget(budget, result.rows);
      return result;
    },
    withTransaction(callback: (client: any) => any) {
      return pgClient.withTransaction((inner: any) => callback(budgeted(inner, budget)));
    },
  });
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
