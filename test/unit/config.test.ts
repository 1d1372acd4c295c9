// Start-up configuration: every variable validated, one clear message naming a bad one.

import { loadConfig, ConfigError } from "../../core/config.ts";

function error(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error("expected a ConfigError");
}

test("defaults: port 5678, embedded database, development", () => {
  const config = loadConfig({});
  expect(config).toMatchObject({ port: 5678, databaseUrl: null, rootDatabaseUrl: null, databaseName: "tenantbase", isProduction: false });
});

test.each([
  [{ PORT: "abc" }, /^PORT /],
  [{ PORT: "70000" }, /^PORT /],
  [{ DATABASE_URL: "postgres://u@h/db" }, /^AUTH_DATABASE_URL is required/],
  [{ AUTH_DATABASE_URL: "postgres://u@h/db" }, /^DATABASE_URL is required/],
  [{ DATABASE_URL: "mysql://u@h/db", AUTH_DATABASE_URL: "postgres://u@h/db" }, /^DATABASE_URL must start with postgres/],
  [{ ROOT_DATABASE_URL: "not a url" }, /^ROOT_DATABASE_URL is not a valid URL/],
  [{ ROOT_DATABASE_URL: "postgres://u@h" }, /^ROOT_DATABASE_URL must name a database/],
  [{ DATABASE_NAME: "Bad-Name" }, /^DATABASE_NAME must be/],
  [{ JWT_SECRET: "short" }, /^JWT_SECRET must be at least 32/],
  [{ NODE_ENV: "production" }, /^JWT_SECRET is required when NODE_ENV=production/],
  [{ EMBEDDED_POSTGRES_PORT: "0" }, /^EMBEDDED_POSTGRES_PORT /],
])("%j is refused with a message naming the variable", (env, message) => {
  expect(error(env)).toMatch(message);
});

test("production with ROOT_DATABASE_URL needs the role passwords", () => {
  const base = { NODE_ENV: "production", JWT_SECRET: "x".repeat(32), ROOT_DATABASE_URL: "postgres://p@h/postgres" };
  expect(error(base)).toMatch(/^DATABASE_OWNER_PASSWORD is required/);
  expect(error({ ...base, DATABASE_OWNER_PASSWORD: "a" })).toMatch(/^DATABASE_AUTHENTICATOR_PASSWORD is required/);
});

test("realtime limits: defaults, overrides, bad values named", () => {
  const budgets = { maxConnectionsPerOrganization: 1000, maxOrganizationSharePercent: 25, maxSubscriptionsPerOrganization: 500, deliveryConnections: 2 };
  expect(loadConfig({}).realtime).toEqual({ maxSubscriptionsPerConnection: 20, maxConnectionsPerUser: 10, maxConnections: 10_000, keepaliveMs: 12_000, ...budgets });
  expect(loadConfig({ REALTIME_MAX_SUBSCRIPTIONS_PER_CONNECTION: "5", REALTIME_MAX_CONNECTIONS_PER_USER: "3", REALTIME_MAX_CONNECTIONS: "100", REALTIME_KEEPALIVE_MS: "5000" }).realtime)
    .toEqual({ maxSubscriptionsPerConnection: 5, maxConnectionsPerUser: 3, maxConnections: 100, keepaliveMs: 5000, ...budgets });
  expect(error({ REALTIME_MAX_SUBSCRIPTIONS_PER_CONNECTION: "0" })).toMatch(/^REALTIME_MAX_SUBSCRIPTIONS_PER_CONNECTION /);
  expect(error({ REALTIME_MAX_CONNECTIONS_PER_USER: "many" })).toMatch(/^REALTIME_MAX_CONNECTIONS_PER_USER /);
  expect(error({ REALTIME_KEEPALIVE_MS: "10" })).toMatch(/^REALTIME_KEEPALIVE_MS /);
});

test("invitation links go to the client app: APP_URL, default http://localhost:3000, whatever PORT is", async () => {
  const { mailConfig } = await import("../../core/config.ts");
  expect(mailConfig({ PORT: "8080" }).appUrl).toBe("http://localhost:3000");
  expect(mailConfig({ APP_URL: "https://app.example.com/" }).appUrl).toBe("https://app.example.com");
});
