// `npm run worker`: the job queue on its own (scale it separately from the API). Connects
// straight to PostgreSQL as the owner (DATABASE_URL, or the same fallbacks as `npm start`).

import "../core/graphile-env.ts";
import { loadConfig, ConfigError } from "../core/config.ts";
import { prepareDatabase } from "../db/database.ts";
import { startWorker } from "./runner.ts";
import { operationsContextFrom, operationsCrontab } from "./operations.ts";
import { createLogger, setRootLogger } from "../core/logger.ts";

async function main() {
  const config = loadConfig();
  setRootLogger(createLogger({ level: config.logLevel, file: config.logFile, name: "tenantbase-worker", stdout: true }));
  // Straight to PostgreSQL (DIRECT_DATABASE_URL) when DATABASE_URL goes through PgBouncer.
  const database = await prepareDatabase(
    config.directDatabaseUrl && config.databaseUrl ? { ...config, databaseUrl: config.directDatabaseUrl } : config,
    (line) => console.log(`[worker] ${line}`));
  // Never through PgBouncer: graphile-worker LISTENs for new jobs, which needs a session of its
  // own (see README, production guide).
  const ownerUrl = database.ownerUrl;
  const runner = await startWorker({
    ownerUrl,
    concurrency: config.workerConcurrency,
    operations: operationsContextFrom(config, ownerUrl, database.rootUrl),
    extraCrontab: operationsCrontab(config),
    unlockIntervalSeconds: config.security.workerUnlockIntervalSeconds,
  });
  console.log("[worker] running");
  // Running jobs finish (graphile-worker's stop waits for them) unless SHUTDOWN_TIMEOUT_MS passes.
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => {
      console.error(`[worker] shutdown deadline (${config.shutdownTimeoutMs} ms) passed; exiting with jobs still running`);
      process.exit(1);
    }, config.shutdownTimeoutMs).unref();
    await runner.stop();
    await database.stop();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop());
  process.on("SIGTERM", () => void stop());
  await runner.promise;
}

main().catch((error) => {
  console.error(`[worker] ${error instanceof ConfigError ? "configuration error" : "failed"}: ${error.message}`);
  process.exit(1);
});
