// bench:api's ceiling for any Node HTTP server in front of the same SQL: a hand-written
// node:http endpoint with no framework that answers exactly the GraphQL list query's question.
// Per request: parse the JSON body, verify the bearer token (the server's own cached check),
// open the transaction as the server does (begin, settings, app_hidden.start_request() in one
// round trip), run the list query as a named prepared statement (as grafast does), commit, and
// write the same JSON shape. What tenantbase's server costs above this is PostGraphile's engine
// and our middleware; what this costs above raw SQL is HTTP, JSON and the event loop.
// Started by bench/lib/server.ts (BENCH_SERVER=plain); reports its port over IPC.

import { createServer } from "node:http";
import pg from "pg";
import { verifiedTokenCache } from "../../server/auth.ts";
import { startStatement } from "../../server/request-transaction.ts";
import { BENCH_JWT } from "./server.ts";
import { serveReference } from "./reference-child.ts";

const LIST_SQL = `select id, project_id, kind, model, status, credits_charged, created_at from app_public.generations
  where organization_id = $1 order by created_at desc, id desc limit 20`;

const pool = new pg.Pool({ connectionString: process.env.BENCH_AUTH_URL, max: Number(process.env.BENCH_POOL_SIZE ?? 16) });
pool.on("error", () => {});
const verify = verifiedTokenCache(BENCH_JWT);

function answer(res: import("node:http").ServerResponse, status: number, body: unknown) {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", async () => {
    try {
      const { variables } = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      const token = /^Bearer (\S+)$/.exec(req.headers.authorization ?? "")?.[1];
      if (!token) return answer(res, 401, { errors: [{ message: "no token" }] });
      const { userId, sessionId } = verify(token);
      const client = await pool.connect();
      try {
        await client.query(startStatement({ role: "app_user", "jwt.claims.user_id": userId, "jwt.claims.session_id": sessionId }));
        const { rows } = await client.query({ name: "list", text: LIST_SQL, values: [variables.o] });
        await client.query("commit");
        const nodes = rows.map((r) => ({
          id: r.id,
          projectId: r.project_id,
          kind: r.kind,
          model: r.model,
          status: r.status,
          creditsCharged: String(r.credits_charged),
          createdAt: r.created_at.toISOString(),
        }));
        answer(res, 200, { data: { generations: { nodes } } });
      } catch (error) {
        await client.query("rollback").catch(() => {});
        throw error;
      } finally {
        client.release();
      }
    } catch (error) {
      answer(res, 500, { errors: [{ message: String((error as Error).message) }] });
    }
  });
});
serveReference(server, pool);
