// npm run bench:analytics — organizationUsage for an organization with 100,000 generations in a
// table of 10,000,000 (BENCH_GENERATIONS to change the total; the data set is generated once and
// reused). p50/p95 of: GraphQL over HTTP; the same function through `pg` as app_user (RLS, the
// membership check); the same rollup SQL as the owner with an explicit organization (no RLS, no
// function); and, to show why the rollup, the plain aggregate over generations (owner, covering
// index). Interleaved in one run. Env: BENCH_SECONDS (default 5), BENCH_ROUNDS (default 2).

import pg from "pg";
import { ensureDataset } from "./lib/dataset.ts";
import { interleaved, printTable } from "./lib/load.ts";
import { benchToken, startBenchServer } from "./lib/server.ts";
import { asUser, authPool, benchMembers } from "./lib/sql.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const GENERATIONS = Number(process.env.BENCH_GENERATIONS ?? 10_000_000);
const BIG = Math.min(100_000, GENERATIONS);

const db = await ensureDataset("analytics", { organizations: 1000, projectsPerOrganization: 3, generations: GENERATIONS, bigOrganizationGenerations: BIG, days: 365 });
const [big] = await benchMembers(db.ownerUrl);
const token = benchToken(big.userId, big.sessionId);
const server = await startBenchServer(db.ownerUrl, db.authUrl, 4);
const pool = authPool(db.authUrl, 4);
const ownerPool = new pg.Pool({ connectionString: db.ownerUrl, max: 4 });

const owner = await ownerPool.connect();
const sizes = await owner.query(`select (select count(*) from app_public.generations)::bigint as total,
  (select count(*) from app_public.generations where organization_id = $1)::int as org,
  (select count(*) from app_private.generation_usage_daily where organization_id = $1)::int as rollup_rows`, [big.organizationId]);
// The alternative the rollup replaced: an index that covers the aggregate (made once, kept for this comparison).
await owner.query(`create index if not exists bench_generations_usage_covering_idx on app_public.generations (organization_id, created_at) include (kind, model, status, credits_charged)`);
await owner.query(`vacuum (analyze) app_public.generations`);
owner.release();

const day = (offset: number) => new Date(Date.now() + offset * 86400000).toISOString().slice(0, 10);
const cases = [
  { name: "last 30 days by day", from: day(-30), to: day(1), interval: "day" },
  { name: "last 365 days by month", from: day(-365), to: day(1), interval: "month" },
];
const QUERY = `query ($o: UUID!, $from: Date!, $to: Date!, $i: UsageInterval) {
  organizationUsage(organizationId: $o, from: $from, to: $to, interval: $i) { bucketStart kind model generations succeeded failed credits }
}`;
const ROLLUP_SQL = `select date_trunc($4, d.day::timestamp)::date, d.kind, d.model, sum(d.generations), sum(d.succeeded), sum(d.failed), sum(d.credits)
  from app_private.generation_usage_daily d where d.organization_id = $1 and d.day >= $2::date and d.day < $3::date
  group by 1, 2, 3 order by 1, 2, 3`;
const PLAIN_SQL = `select date_trunc($4, (g.created_at at time zone 'UTC')::date::timestamp)::date, g.kind, g.model, count(*),
  count(*) filter (where g.status = 'succeeded'), count(*) filter (where g.status = 'failed'), coalesce(sum(g.credits_charged), 0)
  from app_public.generations g
  where g.organization_id = $1 and g.created_at >= $2::date::timestamptz and g.created_at < $3::date::timestamptz
  group by 1, 2, 3 order by 1, 2, 3`;

console.log(`bench:analytics — data: ${Number(sizes.rows[0].total).toLocaleString("en-US")} generations in total; organization 1 has ${sizes.rows[0].org.toLocaleString("en-US")} (${sizes.rows[0].rollup_rows.toLocaleString("en-US")} rollup rows)`);
if (GENERATIONS < 10_000_000) console.log(`NOTE: smaller than the 10,000,000-row target (BENCH_GENERATIONS=${GENERATIONS})`);
console.log(`1 client (latency, no queueing), ${ROUNDS} x ${SECONDS} s per measurement, interleaved`);
for (const c of cases) {
  const params = [big.organizationId, c.from, c.to, c.interval];
  const gql = await server.graphql(QUERY, { o: big.organizationId, from: c.from, to: c.to, i: c.interval }, token);
  const plain = await ownerPool.query(PLAIN_SQL, params);
  if (gql.organizationUsage.length !== plain.rows.length) throw new Error(`rollup and plain aggregate disagree: ${gql.organizationUsage.length} vs ${plain.rows.length} rows`);
  const results = await interleaved(ROUNDS, 1, SECONDS, [
    ["organizationUsage, GraphQL over HTTP", () => server.graphql(QUERY, { o: big.organizationId, from: c.from, to: c.to, i: c.interval }, token)],
    ["organization_usage() through pg as app_user (RLS)", () => asUser(pool, big.userId, big.sessionId, "select * from app_public.organization_usage($1, $2, $3, $4)", params).then(() => {})],
    ["rollup SQL as owner, explicit organization, no RLS", () => ownerPool.query(ROLLUP_SQL, params).then(() => {})],
    ["(alternative) plain aggregate over generations, owner", () => ownerPool.query(PLAIN_SQL, params).then(() => {})],
  ]);
  printTable(`${c.name} (${gql.organizationUsage.length} buckets x kind x model)`, results);
  console.log(`  GraphQL / function through pg: p50 ${(results[0].p50 / results[1].p50).toFixed(2)}x; function / owner SQL: p50 ${(results[1].p50 / results[2].p50).toFixed(2)}x; plain aggregate / rollup: p50 ${(results[3].p50 / results[2].p50).toFixed(1)}x`);
}
await pool.end();
await ownerPool.end();
await server.stop();
await db.stop();
