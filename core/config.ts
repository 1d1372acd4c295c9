// Configuration comes only from environment variables. Each one is parsed and validated here,
// once, at start-up; a bad value stops the process with one line that names the variable.

import { availableParallelism } from "node:os";
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
  /** Operations (issue 7): logging, limits, CORS, backups, monitoring, shutdown. */
  logLevel: string;
  /** Also (or instead) write JSON logs to this file; null: stdout only. */
  logFile: string | null;
  corsOrigins: string[];
  graphiql: boolean;
  introspection: boolean;
  graphqlMaxDepth: number;
  graphqlMaxNodes: number;
  graphqlMaxBodyBytes: number;
  backupDir: string;
  backupCron: string;
  backupRetentionDays: number;
  backupVerifyCron: string;
  slowQueryMs: number;
  workerHeartbeatMaxAgeSeconds: number;
  shutdownTimeoutMs: number;
  /** Folder holding pg_dump / pg_restore of the server's major version; null: search. */
  pgBinDir: string | null;
  /** false behind PgBouncer in transaction mode (applied in core/graphile-env.ts). */
  pgPreparedStatements: boolean;
  /**
   * Owner URL straight to PostgreSQL when DATABASE_URL goes through PgBouncer: migrations and
   * graphile-worker need session features (advisory locks, LISTEN) that transaction pooling breaks.
   */
  directDatabaseUrl: string | null;
  /** WORKER=off: this process serves the API only (run `npm run worker` elsewhere). */
  workerInProcess: boolean;
  workerConcurrency: number;
  /** HTTP server processes (node:cluster) for `npm start`; 1: no cluster. */
  webConcurrency: number;
  /**
   * How long a starting process waits for another one to finish creating the roles and database
   * and migrating (servers and workers started together: one does it, the others wait).
   */
  startupLockTimeoutMs: number;
  /** Mail: links, transport, sender (see mailConfig). */
  mail: MailConfig;
  creditAlerts: CreditAlertsConfig;
  /** GraphQL subscriptions over websockets (server/realtime/). */
  realtime: RealtimeConfig;
  /** Security limits (issue 11): no tenant can hurt another through shared CPU, memory or pool. */
  security: SecurityLimits;
  /** Accounts: tokens, sessions, verification rule, attempt limits, proxies (see accountsConfig). */
  accounts: AccountsConfig;
  /** Requests in flight per tenant and the fair queue in front of /graphql (server/fair-share/). */
  fairShare: FairShareConfig;
  /** POST /webhooks/stripe: body cap and the per-address limit of refused deliveries. */
  stripeWebhook: StripeWebhookLimits;
  /** Trusted documents (persisted operations): which GraphQL documents clients may run. */
  trustedDocuments: TrustedDocumentsConfig;
  /** Sign-in providers (OpenID Connect issuers, GitHub): see signInConfig. */
  signIn: SignInConfig;
  /** Outbound webhooks: retry schedule, timeouts, what addresses endpoints may reach. */
  outboundWebhooks: OutboundWebhooksConfig;
  /** Multi-factor sign-in (docs/mfa.md). */
  mfa: MfaConfig;
}

/** Outbound webhooks (docs/outbound-webhooks.md); read by the delivery task when it runs. */
export interface OutboundWebhooksConfig {
  /** Seconds to wait before each retry after a failed attempt (the first attempt is immediate). */
  retryScheduleSeconds: number[];
  /** Each wait is moved by up to this percentage, either way. */
  retryJitterPercent: number;
  /** One request's whole time (connect, send, answer). */
  timeoutMs: number;
  /** Longest Retry-After honoured after a 429 or 503 (longer ones are cut to it). */
  maxRetryAfterSeconds: number;
  /** An endpoint failing every attempt for this long is disabled (its admins are emailed). */
  disableAfterFailingHours: number;
  /** Requests one organization may have in flight across all workers (leases in SQL); more wait their turn. */
  maxInFlightPerOrganization: number;
  /** Development and tests only: endpoints may be private, loopback, link-local addresses. */
  allowPrivateAddresses: boolean;
  /** http:// URLs (outside production only). */
  allowHttp: boolean;
}

/** Who may still send GraphQL text when TRUSTED_DOCUMENTS=only. */
export const TEXT_CALLERS = ["anonymous", "user", "api_key"] as const;
export type TextCaller = (typeof TEXT_CALLERS)[number];

/**
 * Trusted documents (issue 24, server/trusted-documents.ts). `off`: documents are sent as text
 * (stock GraphQL). `allow`: a document id from the manifests runs its document, and text still
 * runs. `only`: ids only; text is refused (PERSISTED_QUERIES_ONLY) except for allowTextFor.
 */
export interface TrustedDocumentsConfig {
  mode: "off" | "allow" | "only";
  /** Manifest files ({ "<id>": "<document>" }, graphql-codegen's persisted-documents.json). */
  manifests: string[];
  /** In `only` mode, callers who may still send text (e.g. "user" for an internal admin tool). */
  allowTextFor: TextCaller[];
}

/**
 * Fair share of the server (issue 25, section B). Every limit is per server process: the thing it
 * protects, the request pool, is per process too (see fairShareConfig).
 */
export interface FairShareConfig {
  enabled: boolean;
  /** GraphQL requests in flight in this process, all callers together; null: the request pool's size. */
  maxInFlight: number | null;
  /** In flight per signed-in user. */
  maxInFlightPerUser: number;
  /** In flight per API key. */
  maxInFlightPerApiKey: number;
  /** In flight per organization, for API-key requests (a plan's max_concurrent_requests overrides it). */
  maxInFlightPerOrganization: number;
  /** In flight per client address, for anonymous requests. */
  maxInFlightPerAddress: number;
  /** In flight for all anonymous requests together (whatever their addresses). */
  maxInFlightAnonymous: number;
  /** Requests one tenant (user, organization of a key, anonymous address) may have waiting. */
  maxQueuedPerTenant: number;
  /** Requests waiting at most, all tenants together. */
  maxQueued: number;
  /** Past this wait a queued request is refused (429 RATE_LIMITED). */
  maxWaitMs: number;
}

export interface StripeWebhookLimits {
  /** Largest body accepted (Stripe's events are a few KB, rarely past a few hundred). */
  maxBodyBytes: number;
  /** Refused deliveries (no, malformed, stale or wrong signature; too large) per client address per minute; past it 429. */
  maxRefusedPerAddressPerMinute: number;
}

export interface RealtimeConfig {
  /** Subscriptions one websocket may hold at once; the next one is refused. */
  maxSubscriptionsPerConnection: number;
  /** Websockets one user (or API key) may hold open at once in this process. */
  maxConnectionsPerUser: number;
  /** Websockets this process holds at once, authenticated or not (upgrades past it get 503). */
  maxConnections: number;
  /** Milliseconds between keep-alive pings; a socket that misses a pong is closed. */
  keepaliveMs: number;
  /**
   * Websockets one organization may hold in this process (a plan's max_realtime_sockets
   * replaces it): an API key's socket counts in its organization from connection_init, a user's
   * socket in each organization it subscribes to. The next one gets SOCKET_LIMIT_REACHED.
   */
  maxConnectionsPerOrganization: number;
  /** No organization holds more than this percentage of maxConnections, whatever its plan says. */
  maxOrganizationSharePercent: number;
  /** Subscriptions one organization may hold at once in this process (plan: max_realtime_subscriptions). */
  maxSubscriptionsPerOrganization: number;
  /** Pool connections the reading of delivered events may hold at once (each event is one transaction for all its subscribers). */
  deliveryConnections: number;
}

export interface SecurityLimits {
  /** Estimated values one operation may return (fields times page sizes). */
  graphqlMaxCost: number;
  /** Root mutation fields per request (aliases count). */
  graphqlMaxMutations: number;
  graphqlDefaultPageSize: number;
  graphqlMaxPageSize: number;
  /** statement_timeout / idle_in_transaction_session_timeout of request transactions. */
  graphqlStatementTimeoutMs: number;
  graphqlIdleInTransactionTimeoutMs: number;
  promptSearchMinLength: number;
  promptSearchMaxLength: number;
  /** How often each worker unlocks the jobs of workers that died holding them. */
  workerUnlockIntervalSeconds: number;
  /** Document checks before parsing (issue 25, A1): bytes, fragments, spreads, fragment nesting. */
  graphqlMaxDocumentBytes: number;
  graphqlMaxFragments: number;
  graphqlMaxFragmentSpreads: number;
  graphqlMaxFragmentDepth: number;
  /** The parsed-document cache (with its plans): entries and estimated bytes (issue 25, A11). */
  graphqlDocumentCacheEntries: number;
  graphqlDocumentCacheBytes: number;
  /** Largest response body (issue 25, A7): RESPONSE_TOO_LARGE above it. */
  graphqlMaxResponseBytes: number;
}

/** Features an unverified user may not use (VERIFIED_EMAIL_REQUIRED_FOR). */
export const VERIFIED_EMAIL_FEATURES = ["invitations", "api_keys", "organizations"] as const;

/** A limit: at most `max` attempts per `seconds`-long window. */
export interface AttemptLimit {
  max: number;
  seconds: number;
  /** authenticate per email only: the longest delay between turns once slowed down (seconds). */
  maxDelay?: number;
}

/**
 * Limited actions and the scopes each is counted by: client address, client address with the
 * email it names (pair), signed-in user, and email. The email scope of authenticate only slows
 * the account down past `max` (never locks it); that of forgot_password is the rate of reset
 * mails to one address (db/functions/020-accounts/attempt-limits.sql).
 */
export const ATTEMPT_LIMIT_DEFAULTS: Record<string, Partial<Record<"email" | "address" | "user" | "pair", AttemptLimit>>> = {
  authenticate: { email: { max: 10, seconds: 900 }, pair: { max: 10, seconds: 900 }, address: { max: 50, seconds: 900 } },
  register: { pair: { max: 5, seconds: 3600 }, address: { max: 50, seconds: 3600 } },
  forgot_password: { email: { max: 1, seconds: 600 }, address: { max: 20, seconds: 3600 } },
  verify_email: { email: { max: 10, seconds: 3600 }, address: { max: 50, seconds: 3600 } },
  reset_password: { address: { max: 20, seconds: 3600 } },
  resend_verification_email: { user: { max: 5, seconds: 3600 } },
  change_email: { user: { max: 5, seconds: 3600 } },
  password_check: { user: { max: 10, seconds: 900 } },
  // provider sign-ins started (GET /auth/<provider>/start), per client address and per user linking
  sign_in_flow: { address: { max: 30, seconds: 900 }, user: { max: 10, seconds: 900 } },
  // second-factor codes (verifyMfa, stepUpMfa, confirmTotp), per account and per client address
  mfa_code: { user: { max: 10, seconds: 900 }, address: { max: 50, seconds: 900 } },
  // passkey challenges started (startPasskeyRegistration, startPasskeySignIn), per client address
  passkey_challenge: { address: { max: 60, seconds: 900 } },
};

export interface AccountsConfig {
  verificationTokenTtlSeconds: number;
  resetTokenTtlSeconds: number;
  emailChangeTokenTtlSeconds: number;
  sessionIdleTimeoutSeconds: number;
  sessionLifetimeSeconds: number;
  verifiedEmailRequiredFor: string[];
  /** action -> scope -> limit (ATTEMPT_LIMIT_DEFAULTS with RATE_LIMIT_<ACTION>_<SCOPE> applied). */
  attemptLimits: Record<string, Record<string, AttemptLimit>>;
  /**
   * Express's "trust proxy": false (the socket's address is the client), a number of proxy hops,
   * or a list of trusted proxy addresses/subnets. Only then does X-Forwarded-For name the client.
   */
  trustProxy: boolean | number | string[];
}

export interface MailConfig {
  /** The client app's base URL: every link in a mail (and Stripe's return URLs) starts here. */
  appUrl: string;
  /** SMTP server; null: messages are written as .eml files to outboxDir. */
  smtpUrl: string | null;
  outboxDir: string;
  from: string;
}

export interface CreditAlertsConfig {
  /** A grant expiring within this many days, with credits left, gets one notice (docs/credits.md, "Usage alerts"). */
  expiryNoticeDays: number;
}

export type Env = Record<string, string | undefined>;

export function read(env: Env, name: string): string | null {
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

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const value = read(env, name);
  if (value === null) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) {
    throw new ConfigError(`${name} must be a whole number between ${min} and ${max}, got "${value}"`);
  }
  return n;
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const value = read(env, name);
  if (value === null) return fallback;
  if (/^(1|true|on|yes)$/i.test(value)) return true;
  if (/^(0|false|off|no)$/i.test(value)) return false;
  throw new ConfigError(`${name} must be true or false, got "${value}"`);
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

function cronSchedule(env: Env, name: string, fallback: string): string {
  const value = read(env, name) ?? fallback;
  // graphile-worker's crontab: five fields of digits, *, /, - and commas.
  if (!/^[\d*/,-]+( [\d*/,-]+){4}$/.test(value)) {
    throw new ConfigError(`${name} must be a five-field cron schedule like "0 */6 * * *", got "${value}"`);
  }
  return value;
}

function origins(env: Env, name: string): string[] {
  const value = read(env, name);
  if (value === null) return [];
  return value.split(",").map((item) => {
    const origin = item.trim();
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      throw new ConfigError(`${name} must be a comma-separated list of origins like https://app.example.com, got "${origin}"`);
    }
    if (url.origin !== origin) {
      throw new ConfigError(`${name}: "${origin}" is not a bare origin (scheme://host[:port], no path or trailing slash)`);
    }
    return origin;
  });
}

/** WEB_CONCURRENCY: how many server processes; a number, or "auto" for one per core. */
function webConcurrency(env: Env): number {
  if (read(env, "WEB_CONCURRENCY")?.toLowerCase() === "auto") return availableParallelism();
  return integer(env, "WEB_CONCURRENCY", 1, 1, 256);
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
    ...operationsConfig(env, isProduction),
    workerInProcess: read(env, "WORKER") !== "off",
    workerConcurrency: integer(env, "WORKER_CONCURRENCY", 4, 1, 100),
    webConcurrency: webConcurrency(env),
    startupLockTimeoutMs: integer(env, "STARTUP_LOCK_TIMEOUT_MS", 120_000, 100, 3_600_000),
    mail: mailConfig(env),
    creditAlerts: creditAlertsConfig(env),
    realtime: realtimeConfig(env),
    security: securityLimits(env),
    accounts: accountsConfig(env),
    fairShare: fairShareConfig(env),
    stripeWebhook: stripeWebhookLimits(env),
    trustedDocuments: trustedDocumentsConfig(env),
    signIn: signInConfig(env),
    mfa: mfaConfig(env),
    outboundWebhooks: outboundWebhooksConfig(env),
  };
}

/** The defaults of WEBHOOK_RETRY_SCHEDULE: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (Standard Webhooks / Svix). */
export const DEFAULT_WEBHOOK_RETRY_SCHEDULE = [5, 300, 1800, 7200, 18000, 36000, 36000];

export function outboundWebhooksConfig(env: Env = process.env): OutboundWebhooksConfig {
  const isProduction = (read(env, "NODE_ENV") ?? "development") === "production";
  const schedule = read(env, "WEBHOOK_RETRY_SCHEDULE");
  let retryScheduleSeconds = DEFAULT_WEBHOOK_RETRY_SCHEDULE;
  if (schedule !== null && /^none$/i.test(schedule)) {
    retryScheduleSeconds = [];
  } else if (schedule !== null) {
    const items = schedule.split(",").map((item) => item.trim());
    if (items.length > 20 || items.some((item) => !/^\d{1,6}$/.test(item))) {
      throw new ConfigError(`WEBHOOK_RETRY_SCHEDULE must be up to 20 comma-separated waits in seconds (e.g. 5,300,1800), got "${schedule}"`);
    }
    retryScheduleSeconds = items.map(Number);
  }
  const allowPrivateAddresses = bool(env, "WEBHOOK_ALLOW_PRIVATE_ADDRESSES", false);
  if (allowPrivateAddresses && isProduction) {
    throw new ConfigError("WEBHOOK_ALLOW_PRIVATE_ADDRESSES is for development and tests only; it cannot be on when NODE_ENV=production");
  }
  return {
    retryScheduleSeconds,
    retryJitterPercent: integer(env, "WEBHOOK_RETRY_JITTER_PERCENT", 20, 0, 50),
    timeoutMs: integer(env, "WEBHOOK_TIMEOUT_MS", 15_000, 100, 60_000),
    maxRetryAfterSeconds: integer(env, "WEBHOOK_MAX_RETRY_AFTER_SECONDS", 3600, 1, 86400),
    disableAfterFailingHours: integer(env, "WEBHOOK_DISABLE_AFTER_FAILING_HOURS", 120, 1, 24 * 90),
    maxInFlightPerOrganization: integer(env, "WEBHOOK_MAX_IN_FLIGHT_PER_ORGANIZATION", 2, 1, 100),
    allowPrivateAddresses,
    allowHttp: !isProduction,
  };
}

/**
 * TRUSTED_DOCUMENTS=off|allow|only, TRUSTED_DOCUMENTS_MANIFEST (comma-separated files) and
 * TRUSTED_DOCUMENTS_ALLOW_TEXT (comma-separated callers: anonymous, user, api_key). Without a
 * manifest the default is off (the server cannot know its clients' documents); with one it is
 * `only` in production (shipping a manifest is asking for the allow-list) and `allow` elsewhere
 * (GraphiQL and ad-hoc queries keep working in development).
 */
export function trustedDocumentsConfig(env: Env = process.env): TrustedDocumentsConfig {
  const manifests = (read(env, "TRUSTED_DOCUMENTS_MANIFEST") ?? "")
    .split(",")
    .map((file) => file.trim())
    .filter(Boolean)
    .map((file) => path.resolve(file));
  const isProduction = (read(env, "NODE_ENV") ?? "development") === "production";
  const given = read(env, "TRUSTED_DOCUMENTS")?.toLowerCase() ?? null;
  if (given !== null && given !== "off" && given !== "allow" && given !== "only") {
    throw new ConfigError(`TRUSTED_DOCUMENTS must be off, allow or only, got "${given}"`);
  }
  const mode = (given ?? (manifests.length === 0 ? "off" : isProduction ? "only" : "allow")) as TrustedDocumentsConfig["mode"];
  if (mode !== "off" && manifests.length === 0) {
    throw new ConfigError(`TRUSTED_DOCUMENTS=${mode} needs TRUSTED_DOCUMENTS_MANIFEST (the manifest built by npm run documents:manifest)`);
  }
  const allowTextFor = (read(env, "TRUSTED_DOCUMENTS_ALLOW_TEXT") ?? "")
    .split(",")
    .map((item) => item.trim().toLowerCase())
    .filter(Boolean)
    .map((item) => {
      if (!(TEXT_CALLERS as readonly string[]).includes(item)) {
        throw new ConfigError(`TRUSTED_DOCUMENTS_ALLOW_TEXT must list some of ${TEXT_CALLERS.join(", ")}, got "${item}"`);
      }
      return item as TextCaller;
    });
  return { mode, manifests: mode === "off" ? [] : manifests, allowTextFor: [...new Set(allowTextFor)] };
}

export const DEFAULT_FAIR_SHARE: FairShareConfig = {
  enabled: true,
  maxInFlight: null,
  maxInFlightPerUser: 4,
  maxInFlightPerApiKey: 4,
  maxInFlightPerOrganization: 4,
  maxInFlightPerAddress: 2,
  maxInFlightAnonymous: 2,
  maxQueuedPerTenant: 64,
  maxQueued: 2000,
  maxWaitMs: 30_000,
};

/**
 * FAIR_SHARE_* (per process). With WEB_CONCURRENCY=N a tenant may have N × its limit in flight
 * in all, against N pools: its share of each pool stays the same.
 */
export function fairShareConfig(env: Env = process.env): FairShareConfig {
  const d = DEFAULT_FAIR_SHARE;
  return {
    enabled: bool(env, "FAIR_SHARE", d.enabled),
    maxInFlight: read(env, "FAIR_SHARE_MAX_IN_FLIGHT") === null ? null : integer(env, "FAIR_SHARE_MAX_IN_FLIGHT", 10, 1, 100_000),
    maxInFlightPerUser: integer(env, "FAIR_SHARE_MAX_IN_FLIGHT_PER_USER", d.maxInFlightPerUser, 1, 100_000),
    maxInFlightPerApiKey: integer(env, "FAIR_SHARE_MAX_IN_FLIGHT_PER_API_KEY", d.maxInFlightPerApiKey, 1, 100_000),
    maxInFlightPerOrganization: integer(env, "FAIR_SHARE_MAX_IN_FLIGHT_PER_ORGANIZATION", d.maxInFlightPerOrganization, 1, 100_000),
    maxInFlightPerAddress: integer(env, "FAIR_SHARE_MAX_IN_FLIGHT_PER_ADDRESS", d.maxInFlightPerAddress, 1, 100_000),
    maxInFlightAnonymous: integer(env, "FAIR_SHARE_MAX_IN_FLIGHT_ANONYMOUS", d.maxInFlightAnonymous, 1, 100_000),
    maxQueuedPerTenant: integer(env, "FAIR_SHARE_MAX_QUEUED_PER_TENANT", d.maxQueuedPerTenant, 0, 1_000_000),
    maxQueued: integer(env, "FAIR_SHARE_MAX_QUEUED", d.maxQueued, 0, 10_000_000),
    maxWaitMs: integer(env, "FAIR_SHARE_MAX_WAIT_MS", d.maxWaitMs, 100, 3_600_000),
  };
}

export const DEFAULT_STRIPE_WEBHOOK_LIMITS: StripeWebhookLimits = {
  maxBodyBytes: 512 * 1024,
  maxRefusedPerAddressPerMinute: 60,
};

export function stripeWebhookLimits(env: Env = process.env): StripeWebhookLimits {
  return {
    maxBodyBytes: integer(env, "STRIPE_WEBHOOK_MAX_BODY_BYTES", DEFAULT_STRIPE_WEBHOOK_LIMITS.maxBodyBytes, 16 * 1024, 50_000_000),
    maxRefusedPerAddressPerMinute: integer(
      env,
      "STRIPE_WEBHOOK_MAX_REFUSED_PER_MINUTE",
      DEFAULT_STRIPE_WEBHOOK_LIMITS.maxRefusedPerAddressPerMinute,
      1,
      1_000_000,
    ),
  };
}

/** The defaults of the realtime limits (tests and benchmarks start from these). */
export const DEFAULT_REALTIME: RealtimeConfig = {
  maxSubscriptionsPerConnection: 20,
  maxConnectionsPerUser: 10,
  maxConnections: 10_000,
  keepaliveMs: 12_000,
  maxConnectionsPerOrganization: 1_000,
  maxOrganizationSharePercent: 25,
  maxSubscriptionsPerOrganization: 500,
  deliveryConnections: 2,
};

export function realtimeConfig(env: Env = process.env): RealtimeConfig {
  return {
    maxSubscriptionsPerConnection: integer(env, "REALTIME_MAX_SUBSCRIPTIONS_PER_CONNECTION", DEFAULT_REALTIME.maxSubscriptionsPerConnection, 1, 1000),
    maxConnectionsPerUser: integer(env, "REALTIME_MAX_CONNECTIONS_PER_USER", DEFAULT_REALTIME.maxConnectionsPerUser, 1, 100_000),
    maxConnections: integer(env, "REALTIME_MAX_CONNECTIONS", DEFAULT_REALTIME.maxConnections, 1, 1_000_000),
    keepaliveMs: integer(env, "REALTIME_KEEPALIVE_MS", DEFAULT_REALTIME.keepaliveMs, 1000, 600_000),
    maxConnectionsPerOrganization: integer(env, "REALTIME_MAX_CONNECTIONS_PER_ORGANIZATION", DEFAULT_REALTIME.maxConnectionsPerOrganization, 1, 1_000_000),
    maxOrganizationSharePercent: integer(env, "REALTIME_MAX_ORGANIZATION_SHARE", DEFAULT_REALTIME.maxOrganizationSharePercent, 1, 100),
    maxSubscriptionsPerOrganization: integer(env, "REALTIME_MAX_SUBSCRIPTIONS_PER_ORGANIZATION", DEFAULT_REALTIME.maxSubscriptionsPerOrganization, 1, 1_000_000),
    deliveryConnections: integer(env, "REALTIME_DELIVERY_CONNECTIONS", DEFAULT_REALTIME.deliveryConnections, 1, 100),
  };
}

/** Issue 11's limits, each with its one default (docs/security-limits.md, "Limits"). */
export function securityLimits(env: Env = process.env): SecurityLimits {
  const graphqlDefaultPageSize = integer(env, "GRAPHQL_DEFAULT_PAGE_SIZE", 50, 1, 10_000);
  const graphqlMaxPageSize = integer(env, "GRAPHQL_MAX_PAGE_SIZE", 200, 1, 10_000);
  if (graphqlDefaultPageSize > graphqlMaxPageSize) {
    throw new ConfigError(
      `GRAPHQL_DEFAULT_PAGE_SIZE (${graphqlDefaultPageSize}) must not exceed GRAPHQL_MAX_PAGE_SIZE (${graphqlMaxPageSize})`,
    );
  }
  const promptSearchMinLength = integer(env, "PROMPT_SEARCH_MIN_LENGTH", 3, 1, 1000);
  const promptSearchMaxLength = integer(env, "PROMPT_SEARCH_MAX_LENGTH", 200, 1, 10_000);
  if (promptSearchMinLength > promptSearchMaxLength) {
    throw new ConfigError(
      `PROMPT_SEARCH_MIN_LENGTH (${promptSearchMinLength}) must not exceed PROMPT_SEARCH_MAX_LENGTH (${promptSearchMaxLength})`,
    );
  }
  return {
    graphqlMaxCost: integer(env, "GRAPHQL_MAX_COST", 20_000, 100, 10_000_000),
    graphqlMaxMutations: integer(env, "GRAPHQL_MAX_MUTATIONS", 10, 1, 1000),
    graphqlDefaultPageSize,
    graphqlMaxPageSize,
    graphqlStatementTimeoutMs: integer(env, "GRAPHQL_STATEMENT_TIMEOUT_MS", 5000, 100, 3_600_000),
    graphqlIdleInTransactionTimeoutMs: integer(env, "GRAPHQL_IDLE_IN_TRANSACTION_TIMEOUT_MS", 15_000, 100, 3_600_000),
    promptSearchMinLength,
    promptSearchMaxLength,
    workerUnlockIntervalSeconds: integer(env, "WORKER_UNLOCK_INTERVAL_SECONDS", 5, 1, 3600),
    graphqlMaxDocumentBytes: integer(env, "GRAPHQL_MAX_DOCUMENT_BYTES", 50_000, 100, 50_000_000),
    graphqlMaxFragments: integer(env, "GRAPHQL_MAX_FRAGMENTS", 100, 0, 100_000),
    graphqlMaxFragmentSpreads: integer(env, "GRAPHQL_MAX_FRAGMENT_SPREADS", 500, 0, 1_000_000),
    graphqlMaxFragmentDepth: integer(env, "GRAPHQL_MAX_FRAGMENT_DEPTH", 20, 1, 1000),
    graphqlDocumentCacheEntries: integer(env, "GRAPHQL_DOCUMENT_CACHE_ENTRIES", 500, 0, 100_000),
    graphqlDocumentCacheBytes: integer(env, "GRAPHQL_DOCUMENT_CACHE_BYTES", 64_000_000, 0, 10_000_000_000),
    graphqlMaxResponseBytes: integer(env, "GRAPHQL_MAX_RESPONSE_BYTES", 5_000_000, 1000, 2_000_000_000),
  };
}

function attemptLimit(env: Env, name: string, fallback: AttemptLimit | undefined): AttemptLimit | undefined {
  const value = read(env, name);
  if (value === null) return fallback;
  if (/^(off|none|unlimited)$/i.test(value)) return undefined;
  const match = /^(\d{1,6})\/(\d{1,7})$/.exec(value);
  if (!match || Number(match[1]) < 1 || Number(match[2]) < 1) {
    throw new ConfigError(`${name} must be "<attempts>/<seconds>" (e.g. 10/900) or "off", got "${value}"`);
  }
  return { max: Number(match[1]), seconds: Number(match[2]) };
}

function trustProxy(env: Env): boolean | number | string[] {
  const value = read(env, "TRUST_PROXY");
  if (value === null || /^(false|off|no|0)$/i.test(value)) return false;
  if (/^(true|on|yes)$/i.test(value)) return true;
  if (/^\d{1,2}$/.test(value)) return Number(value);
  const items = value.split(",").map((item) => item.trim());
  for (const item of items) {
    if (!/^(loopback|linklocal|uniquelocal|[0-9a-fA-F:.]+(\/\d{1,3})?)$/.test(item)) {
      throw new ConfigError(
        `TRUST_PROXY must be false, true, a number of proxy hops, or a comma-separated list of proxy addresses/subnets (e.g. 10.0.0.0/8, loopback), got "${item}"`,
      );
    }
  }
  return items;
}

/** Accounts: token lifetimes, sessions, what needs a verified address, attempt limits, proxies. */
export function accountsConfig(env: Env = process.env): AccountsConfig {
  const required = read(env, "VERIFIED_EMAIL_REQUIRED_FOR");
  const verifiedEmailRequiredFor =
    required === null
      ? ["invitations", "api_keys"]
      : /^none$/i.test(required)
        ? []
        : required.split(",").map((item) => item.trim());
  for (const feature of verifiedEmailRequiredFor) {
    if (!(VERIFIED_EMAIL_FEATURES as readonly string[]).includes(feature)) {
      throw new ConfigError(
        `VERIFIED_EMAIL_REQUIRED_FOR must be "none" or a comma-separated list of ${VERIFIED_EMAIL_FEATURES.join(", ")}, got "${feature}"`,
      );
    }
  }
  const attemptLimits: Record<string, Record<string, AttemptLimit>> = {};
  for (const [action, scopes] of Object.entries(ATTEMPT_LIMIT_DEFAULTS)) {
    attemptLimits[action] = {};
    for (const scope of ["email", "address", "user", "pair"] as const) {
      if (!(scope in scopes)) continue;
      const limit = attemptLimit(env, `RATE_LIMIT_${action.toUpperCase()}_${scope.toUpperCase()}`, scopes[scope]);
      if (limit) attemptLimits[action][scope] = limit;
    }
  }
  // A RATE_LIMIT_* name that sets nothing (a typo, or one retired such as
  // RATE_LIMIT_REGISTER_EMAIL) is refused: an operator must not believe a limit is in force.
  const known = new Set(["RATE_LIMIT_AUTHENTICATE_MAX_DELAY_SECONDS"]);
  for (const [action, scopes] of Object.entries(ATTEMPT_LIMIT_DEFAULTS)) {
    for (const scope of Object.keys(scopes)) known.add(`RATE_LIMIT_${action.toUpperCase()}_${scope.toUpperCase()}`);
  }
  for (const name of Object.keys(env)) {
    if (name.startsWith("RATE_LIMIT_") && !known.has(name)) {
      const renamed = name === "RATE_LIMIT_REGISTER_EMAIL" ? " (renamed RATE_LIMIT_REGISTER_PAIR: registrations of one email from one address)" : "";
      throw new ConfigError(`${name} is not a setting${renamed}; the attempt limits are ${[...known].sort().join(", ")}`);
    }
  }
  if (attemptLimits.authenticate?.email) {
    attemptLimits.authenticate.email = {
      ...attemptLimits.authenticate.email,
      maxDelay: integer(env, "RATE_LIMIT_AUTHENTICATE_MAX_DELAY_SECONDS", 30, 1, 3600),
    };
  }
  return {
    verificationTokenTtlSeconds: integer(env, "EMAIL_VERIFICATION_TTL_SECONDS", 3 * 86400, 60, 90 * 86400),
    resetTokenTtlSeconds: integer(env, "PASSWORD_RESET_TTL_SECONDS", 3600, 60, 7 * 86400),
    emailChangeTokenTtlSeconds: integer(env, "EMAIL_CHANGE_TTL_SECONDS", 86400, 60, 30 * 86400),
    sessionIdleTimeoutSeconds: integer(env, "SESSION_IDLE_TIMEOUT_SECONDS", 8 * 3600, 60, 365 * 86400),
    sessionLifetimeSeconds: 86400,
    verifiedEmailRequiredFor,
    attemptLimits,
    trustProxy: trustProxy(env),
  };
}

/** The one default of APP_URL: where a client app runs in development. */
export const DEFAULT_APP_URL = "http://localhost:3000";

export function httpUrl(env: Env, name: string, fallback: string): string {
  const value = read(env, name) ?? fallback;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${name} must be an absolute http(s) URL, got "${value}"`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigError(`${name} must be an http(s) URL, got "${value}"`);
  }
  return value;
}

/** APP_URL without trailing slashes. */
export function appUrl(env: Env): string {
  return httpUrl(env, "APP_URL", DEFAULT_APP_URL).replace(/\/+$/, "");
}

export interface MfaConfig {
  /**
   * MFA_SECRET_KEY: encrypts TOTP secrets (AES-256-GCM, key = its SHA-256). null: the server
   * derives one from the JWT secret (HKDF), so that upgrading needs no new variable.
   */
  secretKey: string | null;
  /** The issuer authenticator apps show next to the account (MFA_TOTP_ISSUER). */
  totpIssuer: string;
  /** APP_URL: passkeys belong to its host (the relying party) and are answered from its origin. */
  appUrl: string;
}

export function mfaConfig(env: Env = process.env): MfaConfig {
  const secretKey = read(env, "MFA_SECRET_KEY");
  if (secretKey !== null && secretKey.length < 32) {
    throw new ConfigError("MFA_SECRET_KEY must be at least 32 characters long");
  }
  const totpIssuer = read(env, "MFA_TOTP_ISSUER") ?? "tenantbase";
  if (totpIssuer.length > 64 || /[:\r\n]/.test(totpIssuer)) {
    throw new ConfigError("MFA_TOTP_ISSUER must be at most 64 characters, without colons or line breaks");
  }
  return { secretKey, totpIssuer, appUrl: appUrl(env) };
}

/** Mail settings; read by the worker's mail tasks when they run (tests change them between jobs). */
export function mailConfig(env: Env = process.env): MailConfig {
  const smtpUrl = read(env, "SMTP_URL");
  if (smtpUrl !== null && !/^smtps?:\/\//.test(smtpUrl)) {
    throw new ConfigError(`SMTP_URL must start with smtp:// or smtps://`);
  }
  return {
    appUrl: appUrl(env),
    smtpUrl,
    outboxDir: path.resolve(read(env, "OUTBOX_DIR") ?? path.join(read(env, "DATA_DIR") ?? ".data", "outbox")),
    from: read(env, "MAIL_FROM") ?? "tenantbase <no-reply@tenantbase.localhost>",
  };
}

/** Usage alert settings; read by the worker's notice task when it runs (validated at start-up too). */
export function creditAlertsConfig(env: Env = process.env): CreditAlertsConfig {
  return { expiryNoticeDays: integer(env, "CREDIT_EXPIRY_NOTICE_DAYS", 7, 1, 365) };
}

/** What the logger needs before (or without) a full configuration: LOG_FILE, LOG_LEVEL. */
export function logDefaults(env: Env = process.env): { file: string | null; level: string } {
  const file = read(env, "LOG_FILE");
  const level = read(env, "LOG_LEVEL")?.toLowerCase() ?? null;
  // Under jest, stay quiet unless the run collects logs into a file.
  const quiet = read(env, "NODE_ENV") === "test" && file === null;
  return { file: file === null ? null : path.resolve(file), level: level ?? (quiet ? "silent" : "info") };
}

function operationsConfig(env: Env, isProduction: boolean) {
  const logLevel = (read(env, "LOG_LEVEL") ?? "info").toLowerCase();
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}, got "${logLevel}"`);
  }
  const logFile = read(env, "LOG_FILE");
  const pgBinDir = read(env, "PG_BIN_DIR");
  return {
    logLevel,
    logFile: logFile === null ? null : path.resolve(logFile),
    corsOrigins: origins(env, "CORS_ORIGINS"),
    // Both default to on in development and off in production.
    graphiql: bool(env, "GRAPHIQL", !isProduction),
    introspection: bool(env, "GRAPHQL_INTROSPECTION", !isProduction),
    graphqlMaxDepth: integer(env, "GRAPHQL_MAX_DEPTH", 12, 2, 100),
    graphqlMaxNodes: integer(env, "GRAPHQL_MAX_NODES", 500, 10, 100000),
    graphqlMaxBodyBytes: integer(env, "GRAPHQL_MAX_BODY_BYTES", 100_000, 1000, 50_000_000),
    backupDir: path.resolve(read(env, "BACKUP_DIR") ?? path.join(read(env, "DATA_DIR") ?? ".data", "backups")),
    backupCron: cronSchedule(env, "BACKUP_CRON", "0 */6 * * *"),
    backupRetentionDays: integer(env, "BACKUP_RETENTION_DAYS", 30, 1, 3650),
    backupVerifyCron: cronSchedule(env, "BACKUP_VERIFY_CRON", "30 3 * * 0"),
    slowQueryMs: integer(env, "SLOW_QUERY_MS", 500, 1, 3_600_000),
    workerHeartbeatMaxAgeSeconds: integer(env, "WORKER_HEARTBEAT_MAX_AGE_SECONDS", 120, 5, 86400),
    shutdownTimeoutMs: integer(env, "SHUTDOWN_TIMEOUT_MS", 15_000, 100, 600_000),
    pgBinDir: pgBinDir === null ? null : path.resolve(pgBinDir),
    pgPreparedStatements: bool(env, "PG_PREPARED_STATEMENTS", true),
    directDatabaseUrl: postgresUrl(env, "DIRECT_DATABASE_URL"),
  };
}

/** A superuser URL for throwaway test and benchmark databases; null: an embedded cluster. */
export function scratchRootUrl(env: Env = process.env): string | null {
  return postgresUrl(env, "TEST_ROOT_DATABASE_URL") ?? postgresUrl(env, "ROOT_DATABASE_URL");
}

/** graphile-migrate hands its actions the database it is migrating as GM_DBURL. */
export function migrateActionUrl(env: Env = process.env): string | null {
  return read(env, "GM_DBURL");
}

/** The folders of PATH, where tools such as pg_dump are looked for last. */
export function executableSearchPath(env: Env = process.env): string[] {
  return (read(env, "PATH") ?? "").split(path.delimiter).filter(Boolean);
}

/** A sign-in provider: an OpenID Connect issuer found by discovery, or GitHub (OAuth 2). */
export interface SignInProvider {
  /** Lowercase name used in the routes: /auth/<name>/start, /auth/<name>/callback. */
  name: string;
  kind: "oidc" | "github";
  /** OIDC: the issuer URL (discovery at <issuer>/.well-known/openid-configuration). */
  issuer: string;
  clientId: string;
  clientSecret: string;
  scopes: string;
  /** OIDC: the only algorithm accepted for ID tokens (asymmetric; `none` and HMAC refused). */
  idTokenAlg: string;
  /** GitHub: where its OAuth pages and its API are (github.com; GitHub Enterprise elsewhere). */
  oauthUrl: string;
  apiUrl: string;
}

export interface SignInConfig {
  /** The client app: where callbacks send the browser back (redirects must stay inside it). */
  appUrl: string;
  /** This API's public address: providers redirect to <publicUrl>/auth/<provider>/callback. */
  publicUrl: string;
  providers: SignInProvider[];
  /** http:// issuers (development and tests only; never in production). */
  allowHttp: boolean;
  /**
   * SSO_SECRET_KEY: the AES-256 key (32 bytes) that encrypts organizations' SSO client secrets.
   * Null: generated once in development (DATA_DIR/secrets.json); in production organization SSO
   * connections cannot be set or used (SSO_NOT_CONFIGURED).
   */
  ssoSecretKey?: Buffer | null;
}

/** SSO_SECRET_KEY: 32 bytes, base64 (or base64url). */
export function ssoSecretKey(env: Env = process.env): Buffer | null {
  const value = read(env, "SSO_SECRET_KEY");
  if (value === null) return null;
  const key = /^[A-Za-z0-9+/_-]+={0,2}$/.test(value) ? Buffer.from(value, "base64") : Buffer.alloc(0);
  if (key.length !== 32) {
    throw new ConfigError("SSO_SECRET_KEY must be 32 bytes in base64 (e.g. the output of `openssl rand -base64 32`)");
  }
  return key;
}

/** ID token algorithms a provider may be pinned to: asymmetric only. */
export const ID_TOKEN_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];

function providerUrl(env: Env, name: string, fallback: string | null, allowHttp: boolean): string {
  const value = read(env, name) ?? fallback;
  if (value === null) throw new ConfigError(`${name} is required`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${name} must be an absolute https URL, got "${value}"`);
  }
  if (url.protocol !== "https:" && !(allowHttp && url.protocol === "http:")) {
    throw new ConfigError(`${name} must be an https URL${allowHttp ? " (or http outside production)" : ""}, got "${value}"`);
  }
  if (url.search || url.hash || url.username || url.password) {
    throw new ConfigError(`${name} must be a plain URL (no query, fragment or credentials), got "${value}"`);
  }
  return value.replace(/\/+$/, "");
}

/**
 * Sign-in providers. OIDC_PROVIDERS lists names (e.g. google,microsoft,acme); each needs
 * OIDC_<NAME>_ISSUER, OIDC_<NAME>_CLIENT_ID and OIDC_<NAME>_CLIENT_SECRET, and may set
 * OIDC_<NAME>_SCOPES and OIDC_<NAME>_ID_TOKEN_ALG. GitHub is on when GITHUB_CLIENT_ID and
 * GITHUB_CLIENT_SECRET are set. An OIDC_* variable of a provider not listed stops start-up.
 */
export function signInConfig(env: Env = process.env): SignInConfig {
  const isProduction = read(env, "NODE_ENV") === "production";
  const allowHttp = !isProduction;
  const providers: SignInProvider[] = [];
  const names = (read(env, "OIDC_PROVIDERS") ?? "").split(",").map((n) => n.trim()).filter(Boolean);
  for (const name of names) {
    if (!/^[a-z][a-z0-9]{0,30}$/.test(name)) {
      throw new ConfigError(`OIDC_PROVIDERS must be a comma-separated list of lowercase names (a-z, 0-9), got "${name}"`);
    }
    if (name === "sso") {
      throw new ConfigError(`OIDC_PROVIDERS: "sso" is reserved for organizations' own SSO connections (/auth/sso/…)`);
    }
    if (name === "github") {
      throw new ConfigError(`OIDC_PROVIDERS: "github" is not an OpenID Connect provider; set GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET instead`);
    }
    if (providers.some((p) => p.name === name)) throw new ConfigError(`OIDC_PROVIDERS names "${name}" twice`);
    const prefix = `OIDC_${name.toUpperCase()}_`;
    const clientId = read(env, `${prefix}CLIENT_ID`);
    const clientSecret = read(env, `${prefix}CLIENT_SECRET`);
    if (clientId === null) throw new ConfigError(`${prefix}CLIENT_ID is required (OIDC_PROVIDERS names ${name})`);
    if (clientSecret === null) throw new ConfigError(`${prefix}CLIENT_SECRET is required (OIDC_PROVIDERS names ${name})`);
    const idTokenAlg = read(env, `${prefix}ID_TOKEN_ALG`) ?? "RS256";
    if (!ID_TOKEN_ALGORITHMS.includes(idTokenAlg)) {
      throw new ConfigError(`${prefix}ID_TOKEN_ALG must be one of ${ID_TOKEN_ALGORITHMS.join(", ")} (none and HMAC are refused), got "${idTokenAlg}"`);
    }
    const scopes = read(env, `${prefix}SCOPES`) ?? "openid email profile";
    if (!scopes.split(" ").includes("openid")) throw new ConfigError(`${prefix}SCOPES must include openid, got "${scopes}"`);
    providers.push({
      name,
      kind: "oidc",
      issuer: providerUrl(env, `${prefix}ISSUER`, null, allowHttp),
      clientId,
      clientSecret,
      scopes,
      idTokenAlg,
      oauthUrl: "",
      apiUrl: "",
    });
  }
  const known = new Set(providers.flatMap((p) => ["ISSUER", "CLIENT_ID", "CLIENT_SECRET", "SCOPES", "ID_TOKEN_ALG"].map((k) => `OIDC_${p.name.toUpperCase()}_${k}`)));
  known.add("OIDC_PROVIDERS");
  for (const variable of Object.keys(env)) {
    if (variable.startsWith("OIDC_") && !known.has(variable)) {
      throw new ConfigError(`${variable} is not a setting: OIDC_PROVIDERS names ${names.length ? names.join(", ") : "no provider"} (OIDC_<NAME>_ISSUER, _CLIENT_ID, _CLIENT_SECRET, _SCOPES, _ID_TOKEN_ALG)`);
    }
  }
  const githubId = read(env, "GITHUB_CLIENT_ID");
  const githubSecret = read(env, "GITHUB_CLIENT_SECRET");
  if ((githubId === null) !== (githubSecret === null)) {
    throw new ConfigError(githubId === null ? "GITHUB_CLIENT_ID is required when GITHUB_CLIENT_SECRET is set" : "GITHUB_CLIENT_SECRET is required when GITHUB_CLIENT_ID is set");
  }
  if (githubId !== null && githubSecret !== null) {
    providers.push({
      name: "github",
      kind: "github",
      issuer: "https://github.com",
      clientId: githubId,
      clientSecret: githubSecret,
      scopes: "read:user user:email",
      idTokenAlg: "",
      oauthUrl: providerUrl(env, "GITHUB_OAUTH_URL", "https://github.com", allowHttp),
      apiUrl: providerUrl(env, "GITHUB_API_URL", "https://api.github.com", allowHttp),
    });
  }
  const port = read(env, "PORT") ?? "5678";
  if (isProduction && providers.length > 0 && read(env, "PUBLIC_URL") === null) {
    throw new ConfigError("PUBLIC_URL is required with sign-in providers when NODE_ENV=production (providers redirect to <PUBLIC_URL>/auth/<name>/callback)");
  }
  return {
    appUrl: appUrl(env),
    publicUrl: httpUrl(env, "PUBLIC_URL", `http://localhost:${port}`).replace(/\/+$/, ""),
    providers,
    allowHttp,
    ssoSecretKey: ssoSecretKey(env),
  };
}
