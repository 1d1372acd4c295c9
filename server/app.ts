// Builds the HTTP server: Express with PostGraphile (grafserv) at /graphql, Ruru at /graphiql,
// the auth middleware in front of /graphql, /healthz, /readyz and /metrics, request ids and
// logs, security headers, CORS and request limits (server/http-operations.ts). Used by `npm start` and by the tests,
// which start it on an ephemeral port against their own database.

import { createServer, type Server } from "node:http";
import express from "express";
import pg from "pg";
import { postgraphile, type PostGraphileInstance } from "postgraphile";
import { grafserv } from "postgraphile/grafserv/express/v4";
import { authMiddleware, sessionEndedPlugin, type JwtSettings } from "./auth.ts";
import { makePreset, type PresetOptions } from "./preset.ts";
import { mountStripeWebhook, type StripeConfig } from "./webhooks/stripe.ts";
import { loadStripeConfig } from "../core/stripe-config.ts";
import { writeBillingSettings } from "../db/billing-settings.ts";
import { rootLogger, type Logger } from "../core/logger.ts";
import { accountsConfig, type AccountsConfig } from "../core/config.ts";
import { writeAccountSettings } from "../db/account-settings.ts";
import { createMetrics, type Metrics } from "./metrics.ts";
import { makeReadiness } from "./health.ts";
import { DEFAULT_LIMITS, type GraphQLLimits } from "./graphql-limits.ts";
import { cancelOnDisconnect } from "./query-cancel.ts";
import {
  bodyErrors,
  corsFor,
  graphqlBody,
  operationsPlugin,
  requestContext,
  securityHeaders,
} from "./http-operations.ts";
import { createRealtime, type Realtime } from "./realtime/websockets.ts";
import { DEFAULT_REALTIME, fairShareConfig, type FairShareConfig, type RealtimeConfig, type StripeWebhookLimits } from "../core/config.ts";
import { fairShareGate, type FairShareGate } from "./fair-share/gate.ts";
import { loadTrustedDocuments } from "./trusted-documents.ts";
import { trustedDocumentsConfig, type TrustedDocumentsConfig } from "../core/config.ts";
import { mountSignInRoutes, signInConfig, type SignInConfig } from "./identity/routes.ts";
import { mountSsoRoutes } from "./identity/sso-routes.ts";
import type { ResolveTxt } from "./identity/sso-plugin.ts";

export interface AppOptions {
  /** MFA settings (server/mfa/plugin.ts); default: from the environment. */
  mfa?: PresetOptions["mfa"];
  ownerUrl: string;
  authUrl: string;
  jwt: JwtSettings;
  graphiql?: boolean;
  authPoolSize?: number;
  /** Stripe billing settings (server/stripe/config.ts); default: from the environment. */
  stripe?: StripeConfig;
  /** Default: the process logger (LOG_LEVEL, LOG_FILE). */
  logger?: Logger;
  /** Depth, node count, cost, mutations, body size, introspection, page sizes, timeouts (defaults: DEFAULT_LIMITS). */
  limits?: Partial<GraphQLLimits>;
  /** Origins allowed to call /graphql from a browser (CORS); default none. */
  corsOrigins?: string[];
  /** /readyz reports a worker as stale after this many seconds without a heartbeat. */
  workerHeartbeatMaxAgeSeconds?: number;
  /** Direct URL (not through PgBouncer) for the realtime LISTEN connection; default ownerUrl. */
  listenUrl?: string;
  /** Realtime limits (default DEFAULT_REALTIME). */
  realtime?: Partial<RealtimeConfig>;
  /** Account settings (token lifetimes, idle expiry, attempt limits, TRUST_PROXY); default: from the environment. */
  accounts?: AccountsConfig;
  /** Requests in flight per tenant and the fair queue (default: from the environment, FAIR_SHARE_*). */
  fairShare?: Partial<FairShareConfig>;
  /** Stripe webhook body cap and refused-delivery limit (default: from the environment). */
  stripeWebhook?: Partial<StripeWebhookLimits>;
  /** Whether /readyz counts "no backup yet" as degraded (server/health.ts); default true, false in development. */
  backupsRequired?: boolean;
  /** Rebuild the GraphQL schema when `npm run db:watch` re-applies SQL (development). Default false. */
  watchSchema?: boolean;
  /** Trusted documents (TRUSTED_DOCUMENTS*, server/trusted-documents.ts); default: from the environment. */
  trustedDocuments?: TrustedDocumentsConfig;
  /** Sign-in providers (OIDC_PROVIDERS, GITHUB_*, APP_URL, PUBLIC_URL; server/identity/); default: from the environment. */
  signIn?: SignInConfig;
  /** Organization SSO's DNS TXT lookups (verifySsoDomain); default node:dns. Tests pass their own. */
  ssoResolveTxt?: ResolveTxt;
}

export interface App {
  httpServer: Server;
  pgl: PostGraphileInstance;
  ownerPool: pg.Pool;
  authPool: pg.Pool;
  metrics: Metrics;
  logger: Logger;
  realtime: Realtime;
  fairShare: FairShareGate;
  close(): Promise<void>;
}

export async function createApp(options: AppOptions): Promise<App> {
  // Before anything opens: a bad manifest stops start-up with its reason.
  const trustedDocuments = loadTrustedDocuments(options.trustedDocuments ?? trustedDocumentsConfig());
  const authPool = new pg.Pool({ connectionString: options.authUrl, max: options.authPoolSize ?? 10 });
  // (requests wait their turn in front of this pool: server/fair-share/gate.ts)
  // Every authenticated request checks its session (or API key) on this pool before PostGraphile
  // runs, so it is as large as the request pool: with 4 connections, 16 concurrent clients queued
  // here (bench:api).
  const ownerPool = new pg.Pool({ connectionString: options.ownerUrl, max: options.authPoolSize ?? 10 });
  // A connection dropped by the server (restart, failover, PgBouncer) must not crash the
  // process: idle ones are reported on the pool, checked-out ones on the client itself.
  authPool.on("error", () => {});
  ownerPool.on("error", () => {});
  for (const pool of [authPool, ownerPool]) pool.on("connect", (client) => client.on("error", () => {}));

  const logger = options.logger ?? rootLogger();
  const limits: GraphQLLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const metrics = createMetrics({ ownerPool, pools: { authenticator: authPool, owner: ownerPool }, logger });
  const readiness = makeReadiness({
    ownerPool,
    authPool,
    workerHeartbeatMaxAgeSeconds: options.workerHeartbeatMaxAgeSeconds ?? 120,
    backupsRequired: options.backupsRequired,
  });

  const realtime = createRealtime({
    listenUrl: options.listenUrl ?? options.ownerUrl,
    authPool,
    ownerPool,
    jwt: options.jwt,
    limits: { ...DEFAULT_REALTIME, ...options.realtime },
    maxMessageBytes: limits.maxBodyBytes,
    logger,
  });
  const accounts = options.accounts ?? accountsConfig();
  await writeAccountSettings(ownerPool, accounts);

  const signIn = options.signIn ?? signInConfig();
  const sso = { secretKey: signIn.ssoSecretKey ?? null, resolveTxt: options.ssoResolveTxt };
  const pgl = postgraphile({
    extends: [makePreset({ authPool, jwt: options.jwt, graphiql: options.graphiql, stripe: options.stripe, realtime, limits, logger, watch: options.watchSchema, trustedDocuments, sso, mfa: options.mfa })],
    plugins: [operationsPlugin({ limits, metrics }), sessionEndedPlugin()],
    grafserv: { maxRequestLength: limits.maxBodyBytes },
  });
  const serv = pgl.createServ(grafserv);

  const authPoolSize = options.authPoolSize ?? 10;
  const fairShare = fairShareGate({
    config: { ...fairShareConfig(), ...options.fairShare },
    ownerPool,
    poolSize: authPoolSize,
    registry: metrics.registry,
  });

  const app = express();
  app.disable("x-powered-by");
  // Which X-Forwarded-For entries to believe (req.ip): none unless TRUST_PROXY says so.
  app.set("trust proxy", accounts.trustProxy);
  let draining = false;
  app.use((_req, res, next) => {
    if (draining) res.setHeader("Connection", "close");
    next();
  });
  app.use(requestContext(logger, metrics));
  app.use(securityHeaders("/graphiql"));
  // GraphiQL's schema-change stream (development, watch mode): a response that never ends, so
  // shutdown closes these connections itself instead of waiting for them until its deadline.
  const streams = new Set<import("node:net").Socket>();
  app.use("/graphql/stream", (req, _res, next) => {
    streams.add(req.socket);
    req.socket.once("close", () => streams.delete(req.socket));
    next();
  });
  // Browsers ask for it on every GraphiQL load; an empty answer instead of a 404 in the console.
  app.get("/favicon.ico", (_req, res) => {
    res.status(204).end();
  });
  app.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });
  app.get("/readyz", async (_req, res) => {
    const result = await readiness();
    res.status(result.status === "unready" ? 503 : 200).json(result);
  });
  app.get("/metrics", async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  await writeBillingSettings(ownerPool, options.stripe ?? loadStripeConfig());
  await mountStripeWebhook(app, { pool: ownerPool, config: options.stripe, limits: options.stripeWebhook });
  mountSignInRoutes(app, { pool: ownerPool, config: signIn, jwt: options.jwt, logger });
  mountSsoRoutes(app, { pool: ownerPool, config: signIn, logger });
  app.use("/graphql", corsFor(options.corsOrigins ?? []));
  app.use("/graphql", ...graphqlBody(limits));
  app.use("/graphql", authMiddleware(options.jwt, ownerPool));
  // Each tenant's requests in flight are bounded; the rest wait here, holding no connection.
  app.use("/graphql", fairShare.middleware);
  app.use("/graphql", cancelOnDisconnect(authPool, logger));

  const httpServer = createServer(app);
  // Websockets are served by server/realtime (token in connection_init), not grafserv's default.
  await serv.addTo(app, httpServer, false);
  realtime.attach(serv, httpServer);
  app.use(bodyErrors(limits, logger));

  let closed = false;
  return {
    httpServer,
    pgl,
    ownerPool,
    authPool,
    metrics,
    logger,
    realtime,
    fairShare,
    async close() {
      if (closed) return;
      closed = true;
      // Stop accepting; answer what is in flight with `Connection: close` and drop keep-alive
      // connections as soon as they fall idle (a client reusing one would otherwise hold the
      // server open until the shutdown deadline).
      draining = true;
      for (const socket of streams) socket.destroy();
      // Websockets first: they would hold httpServer.close() open until the deadline.
      const sockets = realtime.close();
      const sweep = setInterval(() => httpServer.closeIdleConnections?.(), 100);
      await new Promise<void>((resolve) => {
        httpServer.close(() => resolve());
        httpServer.closeIdleConnections?.();
      }).finally(() => clearInterval(sweep));
      await sockets;
      await serv.release(); // also releases pgl
      await Promise.all([authPool.end(), ownerPool.end()]);
    },
  };
}
