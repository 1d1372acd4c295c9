// The PostGraphile v5 preset: one place that says what the GraphQL API is.

import type pg from "pg";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makeRequestPgService } from "./request-transaction.ts";
import { PgSimplifyInflectionPreset } from "@graphile/simplify-inflection";
import { IdAsUuidPlugin } from "./plugins/id-as-uuid.ts";
import { FlattenPayloadPlugin } from "./plugins/flatten-payload.ts";
import { RelationNamesPlugin } from "./plugins/relation-names.ts";
import { makeGenerationConditionsPlugins, type PromptSearchLimits } from "./plugins/generation-conditions.ts";
import { makePageSizePlugin, type PageSizes } from "./plugins/page-size.ts";
import { StrictDatetimePlugin } from "./plugins/strict-datetime.ts";
import { errorCodesPlugin, maskError } from "./errors.ts";
import { rootLogger, type Logger } from "../core/logger.ts";
import { pgSettingsFor, type JwtSettings } from "./auth.ts";
import { makeBillingPlugin } from "./stripe/plugin.ts";
import { makeSsoPlugin, type ResolveTxt } from "./identity/sso-plugin.ts";
import { makeMfaPlugin, type MfaPluginTestHooks } from "./mfa/plugin.ts";
import { makePasskeyPlugin } from "./mfa/passkeys.ts";
import { mfaConfig } from "../core/config.ts";
import type { MfaConfig } from "../core/config.ts";
import { makeAttemptLimitsPlugin } from "./plugins/attempt-limits.ts";
import { clientSettings } from "./client-origin.ts";
import type { StripeConfig } from "../core/stripe-config.ts";
import { RealtimePlugin } from "./realtime/plugin.ts";
import { documentLimitsPlugin, responseBudget, responseLimitPlugin, RESPONSE_BUDGET, type GraphQLLimits } from "./graphql-limits.ts";
import type { Realtime } from "./realtime/websockets.ts";
import { callerOf, trustedDocumentsPlugin, type TrustedDocuments } from "./trusted-documents.ts";

export interface PresetOptions {
  /** Pool of app_authenticator connections; every request runs as app_anonymous or app_user. */
  authPool: pg.Pool;
  jwt: JwtSettings;
  graphiql?: boolean;
  /** Stripe settings for the billing mutations; default: from the environment. */
  stripe?: StripeConfig;
  /** Serves the subscriptions over websockets (server/realtime/); without it they are in the schema only. */
  realtime?: Realtime;
  /** Page sizes, prompt search bounds and the request roles' timeouts (server/graphql-limits.ts). */
  limits: PageSizes & PromptSearchLimits & RequestTimeouts & DocumentLimits;
  /** Where masked errors are logged; default: the process logger. */
  logger?: Logger;
  /**
   * Rebuild the schema when a message arrives on postgraphile_watch (db/watch-schema.ts sends one
   * after each apply); development only. Needs `realtime` (its LISTEN connection). Default false.
   */
  watch?: boolean;
  /** Trusted documents (server/trusted-documents.ts); default: off (documents as text). */
  trustedDocuments?: TrustedDocuments;
  /** Organization SSO (server/identity/sso-plugin.ts): SSO_SECRET_KEY, and a DNS resolver for tests. */
  sso?: { secretKey: Buffer | null; resolveTxt?: ResolveTxt };
  /** MFA settings (MFA_SECRET_KEY, MFA_TOTP_ISSUER); default: from the environment. Tests may pin the TOTP clock. */
  mfa?: MfaConfig & MfaPluginTestHooks;
}

/** The document check before parsing, the document cache and the response budget (server/graphql-limits.ts). */
export type DocumentLimits = Pick<
  GraphQLLimits,
  | "maxDocumentBytes"
  | "maxFragments"
  | "maxFragmentSpreads"
  | "maxFragmentDepth"
  | "maxNodes"
  | "documentCacheEntries"
  | "documentCacheBytes"
  | "maxResponseBytes"
>;

export interface RequestTimeouts {
  statementTimeoutMs: number;
  idleInTransactionTimeoutMs: number;
}

declare global {
  namespace Express {
    interface Request {
      /** application_name of this request's transactions: how a disconnect finds its query. */
      pgApplicationName?: string;
    }
  }
}

export function makePreset(options: PresetOptions): GraphileConfig.Preset {
  const logger = options.logger ?? rootLogger();
  const trusted = options.trustedDocuments;
  if (trusted && trusted.mode !== "off") {
    logger.info({ mode: trusted.mode, documents: trusted.documents.size, allowTextFor: trusted.allowTextFor }, "trusted documents");
    if (trusted.mode === "only" && (options.graphiql ?? true) && !trusted.allowTextFor.includes("anonymous")) {
      logger.warn("GraphiQL sends text, refused in TRUSTED_DOCUMENTS=only except for the callers in TRUSTED_DOCUMENTS_ALLOW_TEXT");
    }
  }
  return {
    extends: [PostGraphileAmberPreset, PgSimplifyInflectionPreset],
    plugins: [
      errorCodesPlugin(),
      IdAsUuidPlugin,
      RelationNamesPlugin,
      FlattenPayloadPlugin,
      StrictDatetimePlugin,
      makePageSizePlugin(options.limits),
      ...makeGenerationConditionsPlugins(options.limits),
      makeBillingPlugin({ pool: options.authPool, config: options.stripe }),
      makeSsoPlugin({ pool: options.authPool, secretKey: options.sso?.secretKey ?? null, resolveTxt: options.sso?.resolveTxt }),
      makeMfaPlugin({ pool: options.authPool, jwt: options.jwt, config: options.mfa }, { now: options.mfa?.now }),
      makePasskeyPlugin({ pool: options.authPool, jwt: options.jwt, config: options.mfa ?? mfaConfig() }),
      RealtimePlugin,
      makeAttemptLimitsPlugin(options.authPool),
      documentLimitsPlugin(options.limits),
      responseLimitPlugin(options.limits),
      // Off: not installed, the request path is stock.
      ...(trusted && trusted.mode !== "off"
        ? [
            trustedDocumentsPlugin(trusted, (event) => {
              const ws = (event.graphqlWsContext as { extra?: { socket?: unknown } } | undefined)?.extra;
              if (ws && options.realtime) return callerOf(options.realtime.contextFor({ socket: ws.socket }).pgSettings);
              const req = (event.request as { requestContext?: { expressv4?: { req?: Express.Request } } } | undefined)?.requestContext?.expressv4?.req;
              return callerOf(pgSettingsFor(req?.identity));
            }),
          ]
        : []),
    ],
    pgServices: [
      makeRequestPgService({
        pool: options.authPool,
        schemas: ["app_public"],
        // LISTEN on its own direct connection (server/realtime/listener.ts), not on this pool.
        pubsub: false,
        pgSubscriber: options.realtime?.listener.pgSubscriber ?? null,
      }),
    ],
    gather: {
      pgJwtTypes: "app_public.jwt_token",
      // Strict inputs: an argument without a default is required (non-null in the schema, so a
      // typed client flags a missing one); an argument with a default stays optional. A function
      // that takes null for an argument says so with `default null`.
      pgStrictFunctions: true,
      // Watch mode (development) reacts to db:watch's NOTIFY; no event trigger (it needs a superuser).
      installWatchFixtures: false,
    },
    schema: {
      // Rows of a connection are never null (`nodes: [Generation!]!`): typed clients need no
      // null checks. Also holds for set-returning functions, none of which returns a null row.
      pgForbidSetofFunctionsToReturnNull: true,
      pgJwtSecret: options.jwt.secret,
      pgJwtSignOptions: {
        algorithm: "HS256",
        audience: options.jwt.audience,
        issuer: options.jwt.issuer,
      },
    },
    grafserv: {
      graphqlPath: "/graphql",
      graphiqlPath: "/graphiql",
      graphiql: options.graphiql ?? true,
      watch: options.watch === true && options.realtime !== undefined,
      maskError: (error) => maskError(error, logger),
      // grafast writes the response's data as JSON text while it walks the result, instead of
      // building objects for JSON.stringify to walk again.
      outputDataAsString: true,
      // Parsed documents are kept by documentLimitsPlugin's cache, bounded by bytes (grafserv's
      // own counts entries only).
      parseAndValidateCacheSize: 0,
      // graphql-ws on /graphql; served by server/realtime/websockets.ts (authenticated in connection_init).
      websockets: options.realtime !== undefined,
    },
    grafast: {
      explain: false,
      context(requestContext) {
        // Every transaction of a request or of a subscription's event runs under the request
        // roles' timeouts (transaction-local, so they hold behind PgBouncer too).
        const timeouts = {
          statement_timeout: String(options.limits.statementTimeoutMs),
          idle_in_transaction_session_timeout: String(options.limits.idleInTransactionTimeoutMs),
        };
        if (requestContext.ws && options.realtime) {
          const context = options.realtime.contextFor(requestContext.ws);
          return { ...context, pgSettings: { ...context.pgSettings, ...timeouts } };
        }
        const req = requestContext.expressv4?.req;
        // Named, so that server/query-cancel.ts can find and cancel its statement when the client
        // hangs up; with where the request came from (attempt limits, sessions).
        return {
          pgSettings: {
            ...pgSettingsFor(req?.identity),
            ...clientSettings(req),
            ...timeouts,
            ...(req?.pgApplicationName ? { application_name: req.pgApplicationName } : {}),
            // what this request's queries may return in all (a symbol: never sent as a setting)
            [RESPONSE_BUDGET]: responseBudget(options.limits.maxResponseBytes),
          },
        };
      },
    },
  };
}
