// `node bench/api-key-auth.ts [requests] [concurrency]`: what an organization API key costs per
// request against a user JWT. Same server, same query ({ organizations { nodes { id name } } }),
// rounds interleaved (JWT, key, JWT, key, …) because this VM's speed drifts. The key path adds
// one SQL round trip (app_hidden.authenticate_api_key: hash lookup, api_calls counter, throttled
// last_used_at); the JWT path none (its session is checked inside the request's transaction by
// app_hidden.start_request). Prints requests/s per round and the median ratio. Uses an embedded PostgreSQL (or TEST_ROOT_DATABASE_URL) and cleans up.

import "../core/graphile-env.ts";
import pg from "pg";
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import jwt from "jsonwebtoken";
import { createScratchDatabase } from "../db/scratch-database.ts";
import { createApp } from "../server/app.ts";

const REQUESTS = Number(process.argv[2] ?? 2000);
const CONCURRENCY = Number(process.argv[3] ?? 8);
const ROUNDS = 3;
const JWT = { secret: randomBytes(32).toString("hex"), audience: "tenantbase", issuer: "tenantbase" };

async function main() {
  const database = await createScratchDatabase("tb_bench_keys");
  const { ownerUrl, authUrl } = database;
  try {
    const owner = new pg.Pool({ connectionString: ownerUrl, max: 2 });
    const { rows: u } = await owner.query(
      `with u as (insert into app_public.users (email, name) values ('bench@example.com', 'Bench') returning id)
       insert into app_private.sessions (user_id, expires_at) select id, now() + interval '1 day' from u returning user_id, id`,
    );
    const userId = u[0].user_id;
    const client = await owner.connect();
    await client.query("begin");
    await client.query("select set_config('jwt.claims.user_id', $1, true)", [userId]);
    const { rows: o } = await client.query("select id from app_public.create_organization('Bench Org')");
    const { rows: k } = await client.query("select secret from app_public.create_api_key($1, 'bench', 'member')", [o[0].id]);
    await client.query("commit");
    client.release();
    const token = jwt.sign({ role: "app_user", sub: userId, session_id: u[0].id, exp: Math.floor(Date.now() / 1000) + 3600 }, JWT.secret, {
      algorithm: "HS256", audience: JWT.audience, issuer: JWT.issuer,
    });
    const secret: string = k[0].secret;

    const app = await createApp({ ownerUrl, authUrl, jwt: JWT, authPoolSize: CONCURRENCY });
    await new Promise<void>((resolve) => app.httpServer.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(app.httpServer.address() as AddressInfo).port}/graphql`;
    const body = JSON.stringify({ query: "{ organizations { nodes { id name } } }" });

    async function run(bearer: string): Promise<number> {
      let next = 0;
      const started = performance.now();
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < REQUESTS) {
            next += 1;
            const response = await fetch(url, {
              method: "POST",
              headers: { "content-type": "application/json", authorization: `Bearer ${bearer}` },
              body,
            });
            const json = (await response.json()) as { data?: { organizations: { nodes: unknown[] } } };
            if (response.status !== 200 || json.data?.organizations.nodes.length !== 1) throw new Error(JSON.stringify(json));
          }
        }),
      );
      return REQUESTS / ((performance.now() - started) / 1000);
    }

    await run(token); // warm-up
    await run(secret);
    const ratios: number[] = [];
    console.log(`${REQUESTS} requests per run, concurrency ${CONCURRENCY}`);
    for (let round = 1; round <= ROUNDS; round++) {
      const jwtRate = await run(token);
      const keyRate = await run(secret);
      ratios.push(keyRate / jwtRate);
      console.log(`round ${round}: JWT ${jwtRate.toFixed(0)} req/s, API key ${keyRate.toFixed(0)} req/s, ratio ${(keyRate / jwtRate).toFixed(2)}`);
    }
    ratios.sort((a, b) => a - b);
    const { rows: calls } = await owner.query("select api_calls from app_public.usage_counters where organization_id = $1", [o[0].id]);
    console.log(`median ratio API key / JWT: ${ratios[Math.floor(ratios.length / 2)].toFixed(2)}; api_calls counted: ${calls[0].api_calls} (expected ${REQUESTS * (ROUNDS + 1)})`);
    await app.close();
    await owner.end();
  } finally {
    await database.drop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
