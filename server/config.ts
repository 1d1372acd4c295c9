// Configuration comes only from environment variables. Each one is parsed and validated here,
// once, at start-up; a bad value stops the process with one line that names the variable.

import path from "node:path";

export class ConfigError extends Error {}

export interface Config {
  nodeEnv: string;
  isProduction: boolean;
  port: number;
  host: string;
  dataDir: string;
  /** Owner-role URL (migrations, worker) and authenticator-role URL (PostGraphile). */
  databaseUrl: string | null;
  authDatabaseUrl: string | null;
  /** Superuser URL: start-up creates the database and roles from it. */
  rootDatabaseUrl: string | null;
  databaseName: string;
  ownerPassword: string | null;
  authenticatorPassword: string | null;
  embeddedPostgresPort: number;
  jwtSecret: string | null;
  jwtAudience: string;
  jwtIssuer: string;
}

type Env = Record<string, string | undefined>;

function read(env: Env, name: string): string | null {
  const value = env[name];
  return value === undefined || value.trim() === "" ? null : value.trim();
}

function postgresUrl(env: Env, name: string): string | null {
  const value = read(env, name);
  if (value === null) return null;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${name} is not a valid URL (expected postgres://user:password@host:port/database)`);
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
    throw new ConfigError(`${name} must start with postgres:// or postgresql://, got ${url.protocol}//`);
  }
  if (url.pathname.length <= 1) {
    throw new ConfigError(`${name} must name a database (postgres://…/database)`);
  }
  return value;
}

function portNumber(env: Env, name: string, fallback: number): number {
  const value = read(env, name);
  if (value === null) return fallback;
  const port = Number(value);
  if (!/^\d+$/.test(value) || port < 1 || port > 65535) {
    throw new ConfigError(`${name} must be a port number between 1 and 65535, got "${value}"`);
  }
  return port;
}

function identifier(env: Env, name: string, fallback: string): string {
  const value = read(env, name) ?? fallback;
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(value)) {
    throw new ConfigError(`${name} must be a lowercase SQL identifier (a-z, 0-9, _), got "${value}"`);
  }
  return value;
}

export function loadConfig(env: Env = process.env): Config {
  const nodeEnv = read(env, "NODE_ENV") ?? "development";
  const isProduction = nodeEnv === "production";

  const databaseUrl = postgresUrl(env, "DATABASE_URL");
  const authDatabaseUrl = postgresUrl(env, "AUTH_DATABASE_URL");
  if ((databaseUrl === null) !== (authDatabaseUrl === null)) {
    throw new ConfigError(
      databaseUrl === null
        ? "DATABASE_URL is required when AUTH_DATABASE_URL is set (set both, or neither)"
        : "AUTH_DATABASE_URL is required when DATABASE_URL is set (set both, or neither)",
    );
  }

  const jwtSecret = read(env, "JWT_SECRET");
  if (jwtSecret !== null && jwtSecret.length < 32) {
    throw new ConfigError("JWT_SECRET must be at least 32 characters long");
  }
  if (jwtSecret === null && isProduction) {
    throw new ConfigError("JWT_SECRET is required when NODE_ENV=production");
  }

  const rootDatabaseUrl = postgresUrl(env, "ROOT_DATABASE_URL");
  const ownerPassword = read(env, "DATABASE_OWNER_PASSWORD");
  const authenticatorPassword = read(env, "DATABASE_AUTHENTICATOR_PASSWORD");
  if (isProduction && databaseUrl === null && rootDatabaseUrl !== null) {
    if (ownerPassword === null) {
      throw new ConfigError("DATABASE_OWNER_PASSWORD is required with ROOT_DATABASE_URL when NODE_ENV=production");
    }
    if (authenticatorPassword === null) {
      throw new ConfigError(
        "DATABASE_AUTHENTICATOR_PASSWORD is required with ROOT_DATABASE_URL when NODE_ENV=production",
      );
    }
  }

  return {
    nodeEnv,
    isProduction,
    port: portNumber(env, "PORT", 5678),
    host: read(env, "HOST") ?? "0.0.0.0",
    dataDir: path.resolve(read(env, "DATA_DIR") ?? ".data"),
    databaseUrl,
    authDatabaseUrl,
    rootDatabaseUrl,
    databaseName: identifier(env, "DATABASE_NAME", "tenantbase"),
    ownerPassword,
    authenticatorPassword,
    embeddedPostgresPort: portNumber(env, "EMBEDDED_POSTGRES_PORT", 54320),
    jwtSecret,
    jwtAudience: read(env, "JWT_AUDIENCE") ?? "tenantbase",
    jwtIssuer: read(env, "JWT_ISSUER") ?? "tenantbase",
  };
}
