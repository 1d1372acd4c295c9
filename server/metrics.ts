// Prometheus metrics (prom-client), served at /metrics. One registry per app instance, so tests
// can run several servers in one process without mixing their series.
//
// Measured in this process: HTTP requests (duration histogram by route and status), GraphQL
// operations (by operation name and outcome), GraphQL errors (by extensions.code), pool usage.
// Read from the database at scrape time (so every server reports the cluster-wide truth, whether
// the worker runs in-process or separately): job counts and failures by task, queue depth, the
// latest backup and its verification, the latest credit-ledger and slow-query checks.

import type pg from "pg";
import client from "prom-client";
import type { Logger } from "../core/logger.ts";

const MAX_OPERATION_NAMES = 200;
const OPERATION_NAME = /^[_A-Za-z][_0-9A-Za-z]{0,63}$/;

export interface Metrics {
  registry: client.Registry;
  httpDuration: client.Histogram<"method" | "route" | "status">;
  graphqlOperations: client.Counter<"operation" | "outcome">;
  graphqlErrors: client.Counter<"code">;
  /** Operation names are client-chosen: cap their number so a client cannot explode the series. */
  operationLabel(name: string | null | undefined): string;
}

export interface MetricsSources {
  ownerPool: pg.Pool;
  pools: Record<string, pg.Pool>;
  logger: Logger;
}

export function createMetrics(sources: MetricsSources): Metrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: "tenantbase_" });

  const httpDuration = new client.Histogram({
    name: "tenantbase_http_request_duration_seconds",
    help: "HTTP request duration by route and status",
    labelNames: ["method", "route", "status"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const graphqlOperations = new client.Counter({
    name: "tenantbase_graphql_operations_total",
    help: "GraphQL operations by operation name and outcome (success, error, partial, rejected)",
    labelNames: ["operation", "outcome"] as const,
    registers: [registry],
  });
  const graphqlErrors = new client.Counter({
    name: "tenantbase_graphql_errors_total",
    help: "GraphQL errors by extensions.code (INTERNAL: masked errors)",
    labelNames: ["code"] as const,
    registers: [registry],
  });

  new client.Gauge({
    name: "tenantbase_db_pool_connections",
    help: "Connections of each pg pool in this process, by state",
    labelNames: ["pool", "state"] as const,
    registers: [registry],
    collect() {
      for (const [name, pool] of Object.entries(sources.pools)) {
        this.set({ pool: name, state: "total" }, pool.totalCount);
        this.set({ pool: name, state: "idle" }, pool.idleCount);
        this.set({ pool: name, state: "waiting" }, pool.waitingCount);
      }
    },
  });

  // Database-derived series: one query per scrape, shared by the collectors below.
  let snapshot: Promise<DatabaseSnapshot | null> | null = null;
  const readSnapshot = () => {
    snapshot ??= readDatabaseSnapshot(sources.ownerPool).catch((error) => {
      sources.logger.warn({ err: error }, "metrics: database unavailable");
      return null;
    });
    const current = snapshot;
    // Each scrape reads afresh; the collectors of one scrape share the same promise.
    setImmediate(() => {
      if (snapshot === current) snapshot = null;
    });
    return current;
  };

  new client.Gauge({
    name: "tenantbase_database_up",
    help: "1 if the metrics query reached the database as app_owner",
    registers: [registry],
    async collect() {
      this.set((await readSnapshot()) ? 1 : 0);
    },
  });
  new client.Counter({
    name: "tenantbase_jobs_total",
    help: "Jobs finished by task and outcome (completed, failed attempt), all workers",
    labelNames: ["task", "outcome"] as const,
    registers: [registry],
    async collect() {
      const snap = await readSnapshot();
      this.reset();
      for (const row of snap?.jobCounters ?? []) this.inc({ task: row.task, outcome: row.outcome }, Number(row.count));
    },
  });
  new client.Gauge({
    name: "tenantbase_job_queue_depth",
    help: "Jobs waiting to run now (not locked, attempts left), by task",
    labelNames: ["task"] as const,
    registers: [registry],
    async collect() {
      const snap = await readSnapshot();
      this.reset();
      for (const row of snap?.queue ?? []) this.set({ task: row.task }, Number(row.ready));
    },
  });
  new client.Gauge({
    name: "tenantbase_jobs_failing",
    help: "Jobs whose last attempt failed (retrying or out of attempts), by task",
    labelNames: ["task"] as const,
    registers: [registry],
    async collect() {
      const snap = await readSnapshot();
      this.reset();
      for (const row of snap?.queue ?? []) this.set({ task: row.task }, Number(row.failing));
    },
  });
  new client.Gauge({
    name: "tenantbase_check_ok",
    help: "Latest result of each operational check (credit_ledger, backup_verification, slow_queries): 1 ok, 0 failed",
    labelNames: ["check"] as const,
    registers: [registry],
    async collect() {
      const snap = await readSnapshot();
      this.reset();
      for (const row of snap?.checks ?? []) this.set({ check: row.name }, row.ok ? 1 : 0);
    },
  });
  new client.Gauge({
    name: "tenantbase_check_timestamp_seconds",
    help: "When each operational check last ran (Unix time)",
    labelNames: ["check"] as const,
    registers: [registry],
    async collect() {
      const snap = await readSnapshot();
      this.reset();
      for (const row of snap?.checks ?? []) this.set({ check: row.name }, Number(row.checked_at_epoch));
    },
  });
  new client.Gauge({
    name: "tenantbase_slow_queries",
    help: "Statements whose mean time exceeded SLOW_QUERY_MS at the last slow-query report",
    registers: [registry],
    async collect() {
      const snap = await readSnapshot();
      const check = snap?.checks.find((row) => row.name === "slow_queries");
      this.set(Number(check?.details?.count ?? 0));
    },
  });
  new client.Gauge({
    name: "tenantbase_backup_last_success_timestamp_seconds",
    help: "When the newest successful backup (kind=backup) or restore verification (kind=verify) finished",
    labelNames: ["kind"] as const,
    registers: [registry],
    async collect() {
      const snap = await readSnapshot();
      this.reset();
      for (const row of snap?.backups ?? []) this.set({ kind: row.kind }, Number(row.finished_epoch));
    },
  });

  const seen = new Set<string>();
  return {
    registry,
    httpDuration,
    graphqlOperations,
    graphqlErrors,
    operationLabel(name) {
      if (!name) return "anonymous";
      if (!OPERATION_NAME.test(name)) return "invalid";
      if (seen.has(name)) return name;
      if (seen.size >= MAX_OPERATION_NAMES) return "other";
      seen.add(name);
      return name;
    },
  };
}

interface DatabaseSnapshot {
  jobCounters: { task: string; outcome: string; count: string }[];
  queue: { task: string; ready: string; failing: string }[];
  checks: { name: string; ok: boolean; details: any; checked_at_epoch: string }[];
  backups: { kind: string; finished_epoch: string }[];
}

async function readDatabaseSnapshot(pool: pg.Pool): Promise<DatabaseSnapshot> {
  const client = await pool.connect();
  let failed: unknown = undefined;
  try {
    // A scrape must not hang on a sick database. SET LOCAL inside a transaction: behind PgBouncer
    // (transaction mode) a session-level SET would leak to another client's connection.
    await client.query("begin read only");
    await client.query("set local statement_timeout = '5s'");
    const { rows } = await client.query(`
      select
        (select coalesce(json_agg(json_build_object('task', task_identifier, 'outcome', outcome, 'count', count)), '[]')
           from app_private.job_counters) as job_counters,
        (select coalesce(json_agg(q), '[]') from (
           select task_identifier as task,
                  count(*) filter (where locked_at is null and run_at <= now() and attempts < max_attempts) as ready,
                  count(*) filter (where last_error is not null) as failing
           from graphile_worker.jobs group by task_identifier) q) as queue,
        (select coalesce(json_agg(json_build_object('name', name, 'ok', ok, 'details', details,
                  'checked_at_epoch', extract(epoch from checked_at))), '[]')
           from app_private.operations_checks) as checks,
        (select coalesce(json_agg(b), '[]') from (
           select kind, extract(epoch from max(finished_at)) as finished_epoch
           from app_private.backup_runs where ok group by kind) b) as backups`);
    await client.query("commit");
    return {
      jobCounters: rows[0].job_counters,
      queue: rows[0].queue,
      checks: rows[0].checks,
      backups: rows[0].backups,
    };
  } catch (error) {
    failed = error;
    throw error;
  } finally {
    // A connection that failed mid-query is thrown away, not returned to the pool.
    client.release(failed ? (failed as Error) : undefined);
  }
}
