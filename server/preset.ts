// The PostGraphile v5 preset: one place that says what the GraphQL API is.

import type pg from "pg";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makeRequestPgService } from "./request-transaction.ts";
import { PgSimplifyInflectionPreset } from "@graphile/simplify-inflection";
import { IdAsUuidPlugin } from "./plugins/id-as-uuid.ts";
import { FlattenPayloadPlugin } from "./plugins/flatten-payload.ts";
import { GenerationConditionsPlugins } from "./plugins/generation-conditions.ts";
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
}

export function makePreset(options: PresetOptions): GraphileConfig.Preset {
  return {
    extends: [PostGraphileAmberPreset, PgSimplifyInflectionPreset],
    plugins: [IdAsUuidPlugin, FlattenPayloadPlugin, ...GenerationConditionsPlugins, makeBillingPlugin({ pool: options.authPool, config: options.stripe })],
    pgServices: [
      makeRequestPgService({
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
      // grafast writes the response's data as JSON text while it walks the result, instead of
      // building objects for JSON.stringify to walk again.
      outputDataAsString: true,
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
