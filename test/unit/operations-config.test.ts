// The operations settings (core/config.ts): defaults, production defaults, and one clear line
// naming the variable for every bad value.

import { loadConfig } from "../../core/config.ts";
import path from "node:path";

test("defaults", () => {
  const config = loadConfig({});
  expect(config).toMatchObject({
    logLevel: "info",
    logFile: null,
    corsOrigins: [],
    graphiql: true,
    introspection: true,
    graphqlMaxDepth: 12,
    graphqlMaxNodes: 500,
    graphqlMaxBodyBytes: 100000,
    backupDir: path.resolve(".data/backups"),
    backupCron: "0 */6 * * *",
    backupRetentionDays: 30,
    backupVerifyCron: "30 3 * * 0",
    slowQueryMs: 500,
    workerHeartbeatMaxAgeSeconds: 120,
    shutdownTimeoutMs: 15000,
    pgBinDir: null,
    pgPreparedStatements: true,
    directDatabaseUrl: null,
  });
  expect(loadConfig({ DATA_DIR: "/srv/tb" }).backupDir).toBe("/srv/tb/backups");
});

test("production turns GraphiQL and introspection off unless asked", () => {
  const base = { NODE_ENV: "production", JWT_SECRET: "x".repeat(32) };
  expect(loadConfig(base)).toMatchObject({ graphiql: false, introspection: false });
  expect(loadConfig({ ...base, GRAPHIQL: "true", GRAPHQL_INTROSPECTION: "on" })).toMatchObject({ graphiql: true, introspection: true });
});

test("values are parsed", () => {
  const config = loadConfig({
    CORS_ORIGINS: "https://app.example.com, http://localhost:3000",
    GRAPHQL_MAX_DEPTH: "8",
    BACKUP_CRON: "15 */4 * * *",
    LOG_LEVEL: "DEBUG",
    PG_PREPARED_STATEMENTS: "false",
  });
  expect(config.corsOrigins).toEqual(["https://app.example.com", "http://localhost:3000"]);
  expect(config.graphqlMaxDepth).toBe(8);
  expect(config.backupCron).toBe("15 */4 * * *");
  expect(config.logLevel).toBe("debug");
  expect(config.pgPreparedStatements).toBe(false);
});

test.each([
  [{ LOG_LEVEL: "loud" }, 'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "loud"'],
  [{ CORS_ORIGINS: "app.example.com" }, 'CORS_ORIGINS must be a comma-separated list of origins like https://app.example.com, got "app.example.com"'],
  [{ CORS_ORIGINS: "https://app.example.com/" }, 'CORS_ORIGINS: "https://app.example.com/" is not a bare origin (scheme://host[:port], no path or trailing slash)'],
  [{ GRAPHIQL: "maybe" }, 'GRAPHIQL must be true or false, got "maybe"'],
  [{ GRAPHQL_MAX_DEPTH: "1" }, 'GRAPHQL_MAX_DEPTH must be a whole number between 2 and 100, got "1"'],
  [{ GRAPHQL_MAX_BODY_BYTES: "10kb" }, 'GRAPHQL_MAX_BODY_BYTES must be a whole number between 1000 and 50000000, got "10kb"'],
  [{ BACKUP_CRON: "every 6 hours" }, 'BACKUP_CRON must be a five-field cron schedule like "0 */6 * * *", got "every 6 hours"'],
  [{ BACKUP_RETENTION_DAYS: "0" }, 'BACKUP_RETENTION_DAYS must be a whole number between 1 and 3650, got "0"'],
  [{ SLOW_QUERY_MS: "-5" }, 'SLOW_QUERY_MS must be a whole number between 1 and 3600000, got "-5"'],
  [{ SHUTDOWN_TIMEOUT_MS: "soon" }, 'SHUTDOWN_TIMEOUT_MS must be a whole number between 100 and 600000, got "soon"'],
  [{ PG_PREPARED_STATEMENTS: "nope" }, 'PG_PREPARED_STATEMENTS must be true or false, got "nope"'],
  [{ DIRECT_DATABASE_URL: "mysql://x/y" }, "DIRECT_DATABASE_URL must start with postgres:// or postgresql://, got mysql://"],
])("%j is refused with one line naming the variable", (env, message) => {
  expect(() => loadConfig(env as Record<string, string>)).toThrow(message);
});
