// The PostGraphile v5 preset: one place that says what the GraphQL API is.

import type pg from "pg";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";
import { PgSimplifyInflectionPreset } from "@graphile/simplify-inflection";
import { IdAsUuidPlugin } from "./plugins/id-as-uuid.ts";
import { FlattenPayloadPlugin } from "./plugins/flatten-payload.ts";
import { makeGenerationConditionsPlugins, type PromptSearchLimits } from "./plugins/generation-conditions.ts";
import { makePageSizePlugin, type PageSizes } from "./plugins/page-size.ts";
import { maskError } from "./errors.ts";
import { pgSettingsFor, type JwtSettings } from "./auth.ts";
import { makeBillingPlugin } from "./stripe/plugin.ts";
import type { StripeConfig } from "../core/stripe-config.ts";

export interface PresetOptions {
  /** Pool of app_authenticator connections; every request runs as app_anonymous or app_user. */
  authPool: pg.Pool;
  jwt: JwtSettings;
  graphiql?: boolean;
  /** Stripe settings for the billing mutations; default: from the environment. */
  stripe?: StripeConfig;
  /** Page sizes, prompt search bounds and the request roles' timeouts (server/graphql-limits.ts). */
  limits: PageSizes & PromptSearchLimits & RequestTimeouts;
}

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
  return {
    extends: [PostGraphileAmberPreset, PgSimplifyInflectionPreset],
    plugins: [
      IdAsUuidPlugin,
      FlattenPayloadPlugin,
      makePageSizePlugin(options.limits),
      ...makeGenerationConditionsPlugins(options.limits),
      makeBillingPlugin({ pool: options.authPool, config: options.stripe })],
    pgServices: [
      makePgService({
        pool: options.authPool,
        schemas: ["app_public"],
      }),
    ],
    gather: {
      pgJwtTypes: "app_public.jwt_token",
    },
    schema: {
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
      watch: false,
      maskError,
    },
    grafast: {
      explain: false,
      context(requestContext) {
        const req = requestContext.expressv4?.req;
        // Every request transaction runs under the request roles' timeouts (transaction-local,
        // so they hold behind PgBouncer too), and is named so that server/query-cancel.ts can
        // find and cancel its statement when the client hangs up.
        return {
          pgSettings: {
            ...pgSettingsFor(req?.identity),
            statement_timeout: String(options.limits.statementTimeoutMs),
            idle_in_transaction_session_timeout: String(options.limits.idleInTransactionTimeoutMs),
            ...(req?.pgApplicationName ? { application_name: req.pgApplicationName } : {}),
          },
        };
      },
    },
  };
}
