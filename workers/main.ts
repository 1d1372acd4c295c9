// `npm run worker`: the job queue on its own, a process with the worker role only (scale it
// separately from the API; `WORKER=off npm start` is the matching web-only process). Any number
// may start together with any number of servers: whichever comes first migrates, the others
// wait for it (db/startup-lock.ts). Connects straight to PostgreSQL as the owner (DATABASE_URL,
// or the same fallbacks as `npm start`). Logs are JSON lines, like the server's.

import "../core/graphile-env.ts";
import { writeSync } from "node:fs";
import { loadConfig, ConfigError } from "../core/config.ts";
import { prepareDatabase } from "../db/database.ts";
import { startWorker } from "./runner.ts";
import { operationsContextFrom, operationsCrontab } from "./operations.ts";
import { createLogger, setRootLogger } from "../core/logger.ts";

async function main() {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`[worker] configuration error: ${error.message}`);
      process.exit(1);
    }
    throw error;
  }
  const logger = createLogger({ level: config.logLevel, file: config.logFile, name: "tenantbase-worker", stdout: true });
  setRootLogger(logger);
  const started = Date.now();
  // Straight to PostgreSQL (DIRECT_DATABASE_URL) when DATABASE_URL goes through PgBouncer.
  const database = await prepareDatabase(
    config.directDatabaseUrl && config.databaseUrl ? { ...config, databaseUrl: config.directDatabaseUrl } : config,
    (line) => logger.info(line),
  );
  // Never through PgBouncer: graphile-worker LISTENs for new jobs, which needs a session of its
  // own (see docs/operations.md, "Workers connect directly").
  const ownerUrl = database.ownerUrl;
  const runner = await startWorker({
    ownerUrl,
    concurrency: config.workerConcurrency,
    operations: operationsContextFrom(config, ownerUrl, database.rootUrl),
    extraCrontab: operationsCrontab(config),
    unlockIntervalSeconds: config.security.workerUnlockIntervalSeconds,
  });
  logger.info({ concurrency: config.workerConcurrency }, `worker running, ready in ${Date.now() - started} ms (database: ${database.mode})`);
  // Running jobs finish (graphile-worker's stop waits for them) unless SHUTDOWN_TIMEOUT_MS passes.
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, `${signal}: stopping the worker (running jobs finish first)`);
    setTimeout(() => {
      logger.error({ deadlineMs: config.shutdownTimeoutMs }, "worker shutdown deadline passed; exiting with jobs still running");
      process.exit(1);
    }, config.shutdownTimeoutMs).unref();
    await runner.stop();
    await database.stop();
    logger.info("worker stopped cleanly");
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
  await runner.promise;
}

main().catch((error) => {
  // Synchronous write: process.exit would drop a pending write to a pipe.
  writeSync(2, `[worker] start-up failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
