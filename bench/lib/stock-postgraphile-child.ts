// bench:api's reference for PostGraphile itself: the same schema served by a stock PostGraphile 5
// set-up (Amber preset and simplify-inflection, the stock pg adaptor, grafserv's node:http
// adaptor, production mode) with none of tenantbase's middleware, plugins or request
// transaction. It makes no session check: the caller's organizations (which the policies read)
// are looked up once at start-up and put in the settings, so this is a ceiling for PostGraphile,
// not a server anyone should run. Started by bench/lib/server.ts (BENCH_SERVER=stock).

import { createServer } from "node:http";
import pg from "pg";
import { postgraphile } from "postgraphile";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";
import { grafserv } from "postgraphile/grafserv/node";
import { PgSimplifyInflectionPreset } from "@graphile/simplify-inflection";
import { verifiedTokenCache } from "../../server/auth.ts";
import { BENCH_JWT } from "./server.ts";
import { serveReference } from "./reference-child.ts";

const owner = new pg.Client({ connectionString: process.env.BENCH_OWNER_URL });
await owner.connect();
const { rows } = await owner.query(`select m.user_id, array_agg(m.organization_id)::text as ids from app_public.organization_members m group by m.user_id`);
await owner.end();
const organizationsOf = new Map<string, string>(rows.map((r) => [r.user_id, r.ids]));

const pool = new pg.Pool({ connectionString: process.env.BENCH_AUTH_URL, max: Number(process.env.BENCH_POOL_SIZE ?? 16) });
pool.on("error", () => {});
const verify = verifiedTokenCache(BENCH_JWT);

const pgl = postgraphile({
  extends: [PostGraphileAmberPreset, PgSimplifyInflectionPreset],
  pgServices: [makePgService({ pool, schemas: ["app_public"] })],
  grafserv: { graphqlPath: "/graphql", graphiql: false, watch: false },
  grafast: {
    explain: false,
    context(requestContext) {
      const header = requestContext.node?.req.headers.authorization ?? "";
      const { userId, sessionId } = verify(header.replace(/^Bearer /, ""));
      return {
        pgSettings: {
          role: "app_user",
          "jwt.claims.user_id": userId,
          "jwt.claims.session_id": sessionId,
          "tenantbase.organization_ids": organizationsOf.get(userId) ?? "{}",
          "tenantbase.admin_organization_ids": "{}",
        },
      };
    },
  },
});
const serv = pgl.createServ(grafserv);
const server = createServer();
serv.addTo(server);
serveReference(server, pool);
