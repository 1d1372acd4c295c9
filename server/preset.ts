// The PostGraphile v5 preset: one place that says what the GraphQL API is.

import type pg from "pg";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";
import { PgSimplifyInflectionPreset } from "@graphile/simplify-inflection";
import { IdAsUuidPlugin } from "./plugins/id-as-uuid.ts";
import { FlattenPayloadPlugin } from "./plugins/flatten-payload.ts";
import { GenerationConditionsPlugins } from "./plugins/generation-conditions.ts";
import { StrictDatetimePlugin } from "./plugins/strict-datetime.ts";
import { maskError } from "./errors.ts";
import { pgSettingsFor, type JwtSettings } from "./auth.ts";
import { makeBillingPlugin } from "./stripe/plugin.ts";
import type { StripeConfig } from "../core/stripe-config.ts";
import { RealtimePlugin } from "./realtime/plugin.ts";
import type { Realtime } from "./realtime/websockets.ts";

export interface PresetOptions {
  /** Pool of app_authenticator connections; every request runs as app_anonymous or app_user. */
  authPool: pg.Pool;
  jwt: JwtSettings;
  graphiql?: boolean;
  /** Stripe settings for the billing mutations; default: from the environment. */
  stripe?: StripeConfig;
  /** Serves the subscriptions over websockets (server/realtime/); without it they are in the schema only. */
  realtime?: Realtime;
}

export function makePreset(options: PresetOptions): GraphileConfig.Preset {
  return {
    extends: [PostGraphileAmberPreset, PgSimplifyInflectionPreset],
    plugins: [
      IdAsUuidPlugin,
      FlattenPayloadPlugin,
      StrictDatetimePlugin,
      ...GenerationConditionsPlugins,
      makeBillingPlugin({ pool: options.authPool, config: options.stripe }),
      RealtimePlugin,
    ],
    pgServices: [
      makePgService({
        pool: options.authPool,
        schemas: ["app_public"],
        // LISTEN on its own direct connection (server/realtime/listener.ts), not on this pool.
        pubsub: false,
        pgSubscriber: options.realtime?.listener.pgSubscriber ?? null,
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
      // graphql-ws on /graphql; served by server/realtime/websockets.ts (authenticated in connection_init).
      websockets: options.realtime !== undefined,
    },
    grafast: {
      explain: false,
      context(requestContext) {
        if (requestContext.ws && options.realtime) return options.realtime.contextFor(requestContext.ws);
        const req = requestContext.expressv4?.req;
        return { pgSettings: pgSettingsFor(req?.identity) };
      },
    },
  };
}
