// The PostGraphile v5 preset: one place that says what the GraphQL API is.

import type pg from "pg";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";
import { PgSimplifyInflectionPreset } from "@graphile/simplify-inflection";
import { IdAsUuidPlugin } from "./plugins/id-as-uuid.ts";
import { FlattenPayloadPlugin } from "./plugins/flatten-payload.ts";
import { RelationNamesPlugin } from "./plugins/relation-names.ts";
import { GenerationConditionsPlugins } from "./plugins/generation-conditions.ts";
import { StrictDatetimePlugin } from "./plugins/strict-datetime.ts";
import { errorCodesPlugin, maskError } from "./errors.ts";
import { rootLogger, type Logger } from "../core/logger.ts";
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
  /** Where masked errors are logged; default: the process logger. */
  logger?: Logger;
}

export function makePreset(options: PresetOptions): GraphileConfig.Preset {
  const logger = options.logger ?? rootLogger();
  return {
    extends: [PostGraphileAmberPreset, PgSimplifyInflectionPreset],
    plugins: [
      errorCodesPlugin(),
      IdAsUuidPlugin,
      RelationNamesPlugin,
      FlattenPayloadPlugin,
      StrictDatetimePlugin,
      ...GenerationConditionsPlugins,
      makeBillingPlugin({ pool: options.authPool, config: options.stripe }),
    ],
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
      watch: false,
      maskError: (error) => maskError(error, logger),
    },
    grafast: {
      explain: false,
      context(requestContext) {
        const req = requestContext.expressv4?.req;
        return { pgSettings: pgSettingsFor(req?.identity) };
      },
    },
  };
}
