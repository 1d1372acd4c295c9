// slow_query_report (crontab, every 5 minutes): statements of this database whose mean time in
// pg_stat_statements exceeds SLOW_QUERY_MS are logged (warn) and counted in /metrics
// (tenantbase_slow_queries, tenantbase_check_ok{check="slow_queries"}). Statement texts are
// normalized by pg_stat_statements (constants become $1), so no values reach the log.
// Without the extension the check is recorded as unavailable (the server warns at start-up).

import type { Task } from "graphile-worker";
import { operationsContext } from "../operations.ts";

export const SLOW_QUERY_REPORT_TASK = "slow_query_report";

export interface SlowStatement {
  queryid: string;
  calls: number;
  meanMs: number;
  maxMs: number;
  query: string;
}

export const slowQueryReport: Task = async (_payload, helpers) => {
  const ctx = operationsContext();
  await helpers.withPgClient(async (client) => {
    const { rows: available } = await client.query(
      "select exists (select 1 from pg_extension where extname = 'pg_stat_statements') as installed",
    );
    if (!available[0].installed) {
      await client.query("select app_private.record_check('slow_queries', true, $1)", [
        JSON.stringify({ available: false, count: 0, thresholdMs: ctx.slowQueryMs }),
      ]);
      return;
    }
    const { rows } = await client.query<SlowStatement>(
      `select queryid::text as queryid, calls::int as calls, round(mean_exec_time::numeric, 1)::float8 as "meanMs",
              round(max_exec_time::numeric, 1)::float8 as "maxMs", left(regexp_replace(query, '\\s+', ' ', 'g'), 500) as query
       from pg_stat_statements
       where dbid = (select oid from pg_database where datname = current_database())
         and mean_exec_time > $1
       order by mean_exec_time desc
       limit 20`,
      [ctx.slowQueryMs],
    );
    for (const statement of rows) {
      ctx.logger.warn({ ...statement, thresholdMs: ctx.slowQueryMs }, "slow query");
    }
    await client.query("select app_private.record_check('slow_queries', $1, $2)", [
      rows.length === 0,
      JSON.stringify({ available: true, count: rows.length, thresholdMs: ctx.slowQueryMs, statements: rows }),
    ]);
  });
};
