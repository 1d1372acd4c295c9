// npm run bench:api — "the latest 20 generations of my organization" for members of 1,000
// organizations (1,000,000 projects, 1,000,000 generations), at 16 concurrent clients, three ways
// interleaved in one run: GraphQL over HTTP; the same SQL through `pg` as app_user under RLS with
// the transaction-local settings PostGraphile sets; the same SQL as the owner with an explicit
// WHERE organization_id. Prints req/s, p50/p95/p99 and the two ratios, and the plans.
// Env: BENCH_SECONDS (default 8), BENCH_ROUNDS (default 3), BENCH_CONCURRENCY (default 16),
// BENCH_GENERATIONS / BENCH_PROJECTS_PER_ORG to shrink the data set.

import pg from "pg";
import { ensureDataset } from "./lib/dataset.ts";
import { interleaved, printTable } from "./lib/load.ts";
import { benchToken, startBenchServer } from "./lib/server.ts";
import { asUser, authPool, benchMembers } from "./lib/sql.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const GENERATIONS = Number(process.env.BENCH_GENERATIONS ?? 1_000_000);
const PROJECTS = Number(process.env.BENCH_PROJECTS_PER_ORG ?? 1000);

// A smaller data set lives in its own database, so switching sizes never regenerates the full one.
const DATASET = GENERATIONS === 1_000_000 && PROJECTS === 1000 ? "api" : `api_${GENERATIONS}_${PROJECTS}`;
const db = await ensureDataset(DATASET, { organizations: 1000, projectsPerOrganization: PROJECTS, generations: GENERATIONS, bigOrganizationGenerations: GENERATIONS / 1000, days: 90 });
const members = await benchMembers(db.ownerUrl);
const tokens = members.map((m) => benchToken(m.userId, m.sessionId));
const server = await startBenchServer(db.ownerUrl, db.authUrl, CONCURRENCY);
const pool = authPool(db.authUrl, CONCURRENCY);
const ownerPool = new pg.Pool({ connectionString: db.ownerUrl, max: CONCURRENCY });

const QUERY = `query ($o: UUID!) {
  generations(condition: { organizationId: $o }, first: 20, orderBy: [CREATED_AT_DESC, ID_DESC]) {
    nodes { id projectId kind model status creditsCharged createdAt }
  }
}`;
const SQL = `select id, project_id, kind, model, status, credits_charged, created_at from app_public.generations
  where organization_id = $1 order by created_at desc, id desc limit 20`;
const member = (i: number) => i % members.length;

// sanity: all three return the same 20 rows
{
  const m = members[7];
  const g = await server.graphql(QUERY, { o: m.organizationId }, tokens[7]);
  const s = await asUser(pool, m.userId, m.sessionId, SQL, [m.organizationId]);
  const o = (await ownerPool.query(SQL, [m.organizationId])).rows;
  const ids = (rows: any[]) => rows.map((r) => r.id).join();
  if (ids(g.generations.nodes) !== ids(s) || ids(s) !== ids(o) || s.length !== 20) throw new Error("the three ways disagree");
}
const sizes = (await ownerPool.query(`select (select count(*) from app_public.generations)::int as g, (select count(*) from app_public.projects)::int as p`)).rows[0];
console.log(`bench:api — ${sizes.p.toLocaleString("en-US")} projects, ${sizes.g.toLocaleString("en-US")} generations, 1,000 organizations; ${CONCURRENCY} concurrent clients, each request a random member; ${ROUNDS} x ${SECONDS} s per way, interleaved`);
if (GENERATIONS < 1_000_000 || PROJECTS < 1000) console.log("NOTE: smaller than the 1,000,000-row target");

const results = await interleaved(ROUNDS, CONCURRENCY, SECONDS, [
  ["GraphQL over HTTP", (_c, i) => server.graphql(QUERY, { o: members[member(i)].organizationId }, tokens[member(i)])],
  ["SQL through pg as app_user (RLS, same settings)", (_c, i) => { const m = members[member(i)]; return asUser(pool, m.userId, m.sessionId, SQL, [m.organizationId]).then(() => {}); }],
  ["SQL as owner, explicit WHERE organization_id", async (_c, i) => {
    // the same round trips as the app_user way (begin, set_config, select, commit): only RLS differs
    const m = members[member(i)];
    const client = await ownerPool.connect();
    try {
      await client.query("begin");
      await client.query("select set_config('jwt.claims.user_id', $1, true), set_config('jwt.claims.session_id', $2, true)", [m.userId, m.sessionId]);
      await client.query(SQL, [m.organizationId]);
      await client.query("commit");
    } finally {
      client.release();
    }
  }],
]);
printTable("latest 20 generations of my organization", results);
// What a GraphQL request costs before any SQL of its own: express, JWT check, the session check
// (one query on the server's owner pool), grafserv parse/validate/plan, and the empty transaction.
const overhead = await interleaved(1, CONCURRENCY, SECONDS, [
  ["(diagnostic) GraphQL { __typename } with a token", (_c, i) => server.graphql("{ __typename }", {}, tokens[member(i)])],
  ["(diagnostic) GraphQL { currentUser { id } } with a token", (_c, i) => server.graphql("{ currentUser { id } }", {}, tokens[member(i)])],
]);
printTable("fixed cost of a GraphQL request (same clients)", overhead);
console.log(`\n  GraphQL / SQL (RLS): ${(results[0].perSecond / results[1].perSecond).toFixed(2)} of the throughput   (goal: at least 0.6)`);
console.log(`  RLS / explicit WHERE: ${(results[1].perSecond / results[2].perSecond).toFixed(3)} of the throughput   (goal: within 2%, i.e. >= 0.98)`);

const m = members[7];
const plan = await asUser(pool, m.userId, m.sessionId, `explain (analyze, buffers, costs off) ${SQL}`, [m.organizationId]);
console.log("\n  plan as app_user under RLS:\n" + plan.map((r: any) => "    " + r["QUERY PLAN"]).join("\n"));
const plan2 = await ownerPool.query(`explain (analyze, buffers, costs off) ${SQL}`, [m.organizationId]);
console.log("  plan as owner, explicit WHERE:\n" + plan2.rows.map((r: any) => "    " + r["QUERY PLAN"]).join("\n"));

await pool.end();
await ownerPool.end();
await server.stop();
await db.stop();
