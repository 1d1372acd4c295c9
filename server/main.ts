// `npm start`: validate configuration, get a database (embedded if none is configured), apply
// migrations and policies, serve the API. SIGINT/SIGTERM stop everything cleanly.

import "./graphile-env.ts";
import { writeSync } from "node:fs";
import { loadConfig, ConfigError, type Config } from "./config.ts";
import { prepareDatabase } from "../db/database.ts";
import { loadLocalSecrets } from "../db/secrets.ts";
import { createApp } from "./app.ts";
import { startWorker } from "../workers/runner.ts";

function log(line: string) {
  console.log(`[tenantbase] ${line}`);
}

function jwtSecretFor(config: Config): string {
  return config.jwtSecret ?? loadLocalSecrets(config.dataDir).jwtSecret;
}

async function main() {
  const started = Date.now();
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`[tenantbase] configuration error: ${error.message}`);
      process.exit(1);
    }
    throw error;
  }

  const database = await prepareDatabase(config, log);
  const app = await createApp({
    ownerUrl: database.ownerUrl,
    authUrl: database.authUrl,
    jwt: { secret: jwtSecretFor(config), audience: config.jwtAudience, issuer: config.jwtIssuer },
  });
  // Jobs run in this process unless WORKER=off (then run `npm run worker` separately).
  const worker = process.env.WORKER === "off" ? null : await startWorker({ ownerUrl: database.ownerUrl });
  await new Promise<void>((resolve, reject) => {
    app.httpServer.once("error", reject);
    app.httpServer.listen(config.port, config.host, () => resolve());
  });

  const base = `http://localhost:${config.port}`;
  log(`ready in ${Date.now() - started} ms (database: ${database.mode})`);
  log(`GraphQL:  ${base}/graphql`);
  log(`GraphiQL: ${base}/graphiql`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: shutting down`);
    try {
      await app.close();
      await worker?.stop();
      await database.stop();
      process.exit(0);
    } catch (error) {
      console.error(error);
      process.exit(1);
    }
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}

main().catch((error) => {
  // Synchronous write: process.exit would drop a pending write to a pipe.
  writeSync(2, `[tenantbase] start-up failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
