// npm run bench:api — the API against raw SQL, for members of 1,000 organizations (1,000,000
// projects, 1,000,000 generations), 16 concurrent clients, every comparison interleaved in one run:
//   1. "the latest 20 generations of my organization": GraphQL over HTTP from 1 server process
//      and from N (node:cluster, WEB_CONCURRENCY); the same SQL through `pg` as app_user under
//      RLS, opened exactly as the server opens a request (the query a named prepared statement,
//      as grafast sends it); the same SQL as the owner with an explicit WHERE organization_id
//      (same round trips, no RLS); the owner again after the session and membership lookups an
//      application without RLS would make; and two references: a hand-written node:http endpoint
//      running the same transaction (what any Node server costs in front of this SQL) and stock
//      PostGraphile 5 on the same schema with nothing of ours and no session check (what
//      PostGraphile itself costs).
//   2. a realistic page: an organization with its credit account, usage counter, members (with
//      their users) and latest generations, nested, against one hand-written SQL statement and
//      against stock PostGraphile 5 serving the same page.
//   3. bench:credits' mutation rows: reserve + capture pairs over 100 organizations.
//   4. the fixed cost of a request ({ __typename }, { currentUser { id } }).
//   5. where the server's CPU goes per request (a V8 CPU profile of the list query's load), and
//      the same for stock PostGraphile 5 beside it, part by part.
//   6. the server CPU per list request of tenantbase, stock PostGraphile and the hand-written endpoint.
// Prints req/s, p50/p95/p99, every ratio and the plans.
// Env: BENCH_SECONDS (default 8), BENCH_ROUNDS (default 3), BENCH_CONCURRENCY (default 16),
// BENCH_PROCESSES (default: one per core), BENCH_GENERATIONS / BENCH_PROJECTS_PER_ORG to shrink the
// data set (a smaller one lives in its own database).

import { mkdtempSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { ensureDataset } from "./lib/dataset.ts";
import { interleaved, printTable, runLoad, type LoadResult } from "./lib/load.ts";
import { benchToken, startBenchServer } from "./lib/server.ts";
import { asOwner, asUser, authPool, benchMembers } from "./lib/sql.ts";
import { printBreakdown, printBreakdowns, printSelfTimeDifferences, summariseProfile } from "./lib/cpu-profile.ts";
import { treeCpuMs } from "./lib/cpu.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const PROCESSES = Number(process.env.BENCH_PROCESSES ?? availableParallelism());
const GENERATIONS = Number(process.env.BENCH_GENERATIONS ?? 1_000_000);
/** BENCH_PARTS=list,profile (say) while iterating: only those parts. */
const PARTS = new Set((process.env.BENCH_PARTS ?? "list,page,credits,overhead,profile").split(","));
const PROJECTS = Number(process.env.BENCH_PROJECTS_PER_ORG ?? 1000);

// A smaller data set lives in its own database, so switching sizes never regenerates the full one.
const DATASET = GENERATIONS === 1_000_000 && PROJECTS === 1000 ? "api" : `api_${GENERATIONS}_${PROJECTS}`;
const db = await ensureDataset(DATASET, { organizations: 1000, projectsPerOrganization: PROJECTS, generations: GENERATIONS, bigOrganizationGenerations: GENERATIONS / 1000, days: 90 });
const members = await benchMembers(db.ownerUrl);
const tokens = members.map((m) => benchToken(m.userId, m.sessionId));
const ownerPool = new pg.Pool({ connectionString: db.ownerUrl, max: CONCURRENCY });
ownerPool.on("error", () => {});
// credits for the mutation rows, whatever the month's allowance left (idempotent on its key)
await ownerPool.query(`select app_private.grant_credits(organization_id, 1000000000000, 'manual', null, 'bench-topup') from app_private.bench_org`);
const server = await startBenchServer(db.ownerUrl, db.authUrl, CONCURRENCY, 1);
const serverN = await startBenchServer(db.ownerUrl, db.authUrl, CONCURRENCY, PROCESSES);
// References for the list query, measured beside it: what any Node HTTP server costs in front of
// the same SQL, and what PostGraphile itself costs with nothing of ours.
const plain = await startBenchServer(db.ownerUrl, db.authUrl, CONCURRENCY, 1, "plain");
const stock = await startBenchServer(db.ownerUrl, db.authUrl, CONCURRENCY, 1, "stock");
const pool = authPool(db.authUrl, CONCURRENCY);

const LIST = `query ($o: UUID!) {
  generations(condition: { organizationId: $o }, first: 20, orderBy: [CREATED_AT_DESC, ID_DESC]) {
    nodes { id projectId kind model status creditsCharged createdAt }
  }
}`;
// Stock PostGraphile names the uuid column rowId (id is its global Node id): the same question.
const LIST_STOCK = LIST.replace("ID_DESC]", "ROW_ID_DESC]").replace("nodes { id ", "nodes { id: rowId ");
const LIST_SQL = `select id, project_id, kind, model, status, credits_charged, created_at from app_public.generations
  where organization_id = $1 order by created_at desc, id desc limit 20`;

const PAGE = `query Page($o: UUID!) {
  organization(id: $o) {
    id slug name planId
    creditAccount { available reserved }
    usageCounter { seatCount projectCount generations }
    organizationMembers(first: 20) { nodes { role joinedAt user { id name email } } }
    generations(first: 20, orderBy: [CREATED_AT_DESC, ID_DESC]) { nodes { id projectId kind model status creditsCharged createdAt } }
  }
}`;
// The same page from stock PostGraphile (rowId for the uuid columns, organization(rowId:)).
const PAGE_STOCK = PAGE.replace("organization(id: $o)", "organization(rowId: $o)")
  .replace("    id slug name planId", "    id: rowId slug name planId")
  .replace("user { id name email }", "user { id: rowId name email }")
  .replace("ID_DESC]) { nodes { id projectId", "ROW_ID_DESC]) { nodes { id: rowId projectId");
const PAGE_SQL = `select o.id, o.slug, o.name, o.plan_id,
  (select json_build_object('available', a.available, 'reserved', a.reserved) from app_public.credit_accounts a where a.organization_id = o.id) as credit_account,
  (select json_build_object('seat_count', c.seat_count, 'project_count', c.project_count, 'generations', c.generations)
     from app_public.usage_counters c where c.organization_id = o.id) as usage_counter,
  (select coalesce(json_agg(json_build_object('role', m.role, 'joined_at', m.joined_at, 'user', json_build_object('id', u.id, 'name', u.name, 'email', u.email))), '[]')
     from (select * from app_public.organization_members m where m.organization_id = o.id order by m.organization_id, m.user_id limit 20) m
     left join app_public.users u on u.id = m.user_id) as members,
  (select coalesce(json_agg(g), '[]') from (select id, project_id, kind, model, status, credits_charged, created_at from app_public.generations g
     where g.organization_id = o.id order by created_at desc, id desc limit 20) g) as generations
from app_public.organizations o where o.id = $1`;

const RESERVE = `mutation ($o: UUID!, $k: String!) { reserveCredits(input: { organizationId: $o, amount: "5", idempotencyKey: $k }) { creditReservation { id } } }`;
const CAPTURE = `mutation ($id: UUID!) { captureCredits(input: { reservationId: $id, amount: "3" }) { creditReservation { status } } }`;

const member = (i: number) => i % members.length;
const run = `${process.pid}-${Date.now()}`;
let seq = 0;
const key = (prefix: string) => `${prefix}-${run}-${seq++}`;

// sanity: every way returns the same rows
{
  const m = members[7];
  const g = await server.graphql(LIST, { o: m.organizationId }, tokens[7]);
  const gN = await serverN.graphql(LIST, { o: m.organizationId }, tokens[7]);
  const s = await asUser(pool, m.userId, m.sessionId, LIST_SQL, [m.organizationId]);
  const o = await asOwner(ownerPool, m.userId, m.sessionId, LIST_SQL, [m.organizationId]);
  const p = await plain.graphql(LIST, { o: m.organizationId }, tokens[7]);
  const k = await stock.graphql(LIST_STOCK, { o: m.organizationId }, tokens[7]);
  const ids = (rows: any[]) => rows.map((r) => r.id).join();
  if ([g.generations.nodes, gN.generations.nodes, o, p.generations.nodes, k.generations.nodes].some((rows) => ids(rows) !== ids(s)) || s.length !== 20) throw new Error("the list ways disagree");
  const page = await server.graphql(PAGE, { o: m.organizationId }, tokens[7]);
  const [pageSql] = await asUser(pool, m.userId, m.sessionId, PAGE_SQL, [m.organizationId]);
  if (ids(page.organization.generations.nodes) !== ids(pageSql.generations) || page.organization.organizationMembers.nodes.length !== pageSql.members.length
    || String(page.organization.creditAccount.available) !== String(pageSql.credit_account.available)) throw new Error("the page ways disagree");
  const pageStock = await stock.graphql(PAGE_STOCK, { o: m.organizationId }, tokens[7]);
  if (ids(pageStock.organization.generations.nodes) !== ids(pageSql.generations) || pageStock.organization.organizationMembers.nodes.length !== pageSql.members.length) throw new Error("the stock page disagrees");
}
const sizes = (await ownerPool.query(`select (select count(*) from app_public.generations)::int as g, (select count(*) from app_public.projects)::int as p`)).rows[0];
console.log(`bench:api — ${sizes.p.toLocaleString("en-US")} projects, ${sizes.g.toLocaleString("en-US")} generations, 1,000 organizations; ${CONCURRENCY} concurrent clients, each request a random member; ${ROUNDS} x ${SECONDS} s per way, interleaved; ${availableParallelism()} cores, ${PROCESSES} server processes for the N rows`);
if (GENERATIONS < 1_000_000 || PROJECTS < 1000) console.log("NOTE: smaller than the 1,000,000-row target");

const sqlAsUser = (sql: string) => (_c: number, i: number) => { const m = members[member(i)]; return asUser(pool, m.userId, m.sessionId, sql, [m.organizationId]).then(() => {}); };
const sqlAsOwner = (sql: string, withCheck: boolean, switchRole = false) => (_c: number, i: number) => { const m = members[member(i)]; return asOwner(ownerPool, m.userId, m.sessionId, sql, [m.organizationId], withCheck, switchRole).then(() => {}); };
const viaGraphql = (s: typeof server, query: string) => (_c: number, i: number) => s.graphql(query, { o: members[member(i)].organizationId }, tokens[member(i)]);

// PostgreSQL's side of each way, per statement (pg_stat_statements of the bench cluster)
const root = new pg.Client({ connectionString: db.rootUrl });
await root.connect();
const statements = await root.query("create extension if not exists pg_stat_statements").then(() => true, () => false);
if (statements) await root.query("select pg_stat_statements_reset()");
const none: LoadResult[] = [];
const list = !PARTS.has("list") ? none : await interleaved(ROUNDS, CONCURRENCY, SECONDS, [
  ["GraphQL over HTTP, 1 process", viaGraphql(server, LIST)],
  [`GraphQL over HTTP, ${PROCESSES} processes`, viaGraphql(serverN, LIST)],
  ["SQL through pg as app_user (RLS, as the server)", sqlAsUser(LIST_SQL)],
  ["SQL as owner, explicit WHERE organization_id", sqlAsOwner(LIST_SQL, false)],
  ["SQL as owner, explicit WHERE + session/membership", sqlAsOwner(LIST_SQL, true)],
  ["SQL as owner, WHERE + session/membership + role switch", sqlAsOwner(LIST_SQL, true, true)],
  ["(reference) hand-written node:http endpoint, same SQL", viaGraphql(plain, LIST)],
  ["(reference) stock PostGraphile 5, no session check", viaGraphql(stock, LIST_STOCK)],
]);
if (list.length) printTable("1. latest 20 generations of my organization", list);
if (list.length && statements) {
  const { rows } = await root.query(`
    select r.rolname as role, s.calls, s.mean_exec_time as ms, regexp_replace(s.query, '\\s+', ' ', 'g') as query
    from pg_stat_statements s join pg_roles r on r.oid = s.userid
    where s.dbid = (select oid from pg_database where datname = current_database()) and s.calls >= 1000
    order by r.rolname, s.total_exec_time desc`);
  console.log("\n  PostgreSQL time per statement during part 1 (mean execution ms; app_user: the GraphQL and RLS ways; app_owner: the WHERE ways):");
  for (const r of rows) console.log(`    ${r.role.padEnd(10)} ${String(r.calls).padStart(8)} calls ${Number(r.ms).toFixed(4).padStart(8)} ms  ${r.query.slice(0, 110)}`);
}

const page = !PARTS.has("page") ? none : await interleaved(ROUNDS, CONCURRENCY, SECONDS, [
  ["page: GraphQL over HTTP, 1 process", viaGraphql(server, PAGE)],
  [`page: GraphQL over HTTP, ${PROCESSES} processes`, viaGraphql(serverN, PAGE)],
  ["page: one SQL statement as app_user (RLS)", sqlAsUser(PAGE_SQL)],
  ["page: (reference) stock PostGraphile 5, no session check", viaGraphql(stock, PAGE_STOCK)],
]);
if (page.length) printTable("2. organization page (credit account, usage, members with users, latest 20 generations)", page);

const spread = (i: number) => 1 + (i % 100);
async function pairGraphql(s: typeof server, i: number) {
  const m = members[spread(i)];
  const token = tokens[spread(i)];
  const r = await s.graphql(RESERVE, { o: m.organizationId, k: key("g") }, token);
  await s.graphql(CAPTURE, { id: r.reserveCredits.creditReservation.id }, token);
}
async function pairSql(i: number) {
  const m = members[spread(i)];
  const [r] = await asUser(pool, m.userId, m.sessionId, "select id from app_public.reserve_credits($1, 5, $2)", [m.organizationId, key("s")]);
  await asUser(pool, m.userId, m.sessionId, "select status from app_public.capture_credits($1, 3)", [r.id]);
}
const credits = !PARTS.has("credits") ? none : await interleaved(ROUNDS, CONCURRENCY, SECONDS, [
  ["reserve+capture: GraphQL over HTTP, 1 process", (_c, i) => pairGraphql(server, i)],
  [`reserve+capture: GraphQL over HTTP, ${PROCESSES} processes`, (_c, i) => pairGraphql(serverN, i)],
  ["reserve+capture: SQL through pg (app_user, RLS)", (_c, i) => pairSql(i)],
]);
if (credits.length) printTable("3. reserve + capture pairs per second (100 organizations, 2 requests each)", credits);

// What a GraphQL request costs before any SQL of its own.
const overhead = !PARTS.has("overhead") ? none : await interleaved(1, CONCURRENCY, SECONDS, [
  ["(diagnostic) anonymous { __typename }", () => server.graphql("{ __typename }", {}, "")],
  ["(diagnostic) { __typename } with a token", (_c, i) => server.graphql("{ __typename }", {}, tokens[member(i)])],
  ["(diagnostic) { currentUser { id } } with a token", (_c, i) => server.graphql("{ currentUser { id } }", {}, tokens[member(i)])],
]);
if (overhead.length) printTable("4. fixed cost of a GraphQL request (1 process, same clients)", overhead);

// 5. The list query's load again, with the single server process profiled.
const profileFile = path.join(mkdtempSync(path.join(tmpdir(), "bench-api-")), "server.cpuprofile");
if (PARTS.has("profile")) {
  // CPU per request from an unprofiled run (the profiler costs CPU itself), shares from a profiled one
  const measured = await server.cpu(() => runLoad("GraphQL list", CONCURRENCY, SECONDS, viaGraphql(server, LIST)));
  const profiled = await server.profile(profileFile, () => runLoad("GraphQL list, profiled", CONCURRENCY, SECONDS, viaGraphql(server, LIST)));
  printBreakdown(
    `5. where the server's CPU goes: the list query through GraphQL, 1 process (${measured.result.perSecond.toFixed(0)} req/s; profile: ${profileFile})`,
    summariseProfile(profileFile),
    measured.result.ok,
    measured.cpuMicros,
  );
  // 5b. stock PostGraphile 5 under the same load, profiled the same way: what tenantbase spends
  // that PostGraphile itself does not, part by part.
  const stockFile = profileFile.replace(/server\.cpuprofile$/, "stock.cpuprofile");
  const stockMeasured = await stock.cpu(() => runLoad("stock list", CONCURRENCY, SECONDS, viaGraphql(stock, LIST_STOCK)));
  await stock.profile(stockFile, () => runLoad("stock list, profiled", CONCURRENCY, SECONDS, viaGraphql(stock, LIST_STOCK)));
  printBreakdowns(`5b. the same for stock PostGraphile 5 (${stockMeasured.result.perSecond.toFixed(0)} req/s; profile: ${stockFile}) beside tenantbase`, [
    { label: "tenantbase", breakdown: summariseProfile(profileFile), requests: measured.result.ok, cpuMicros: measured.cpuMicros },
    { label: "stock PG5", breakdown: summariseProfile(stockFile), requests: stockMeasured.result.ok, cpuMicros: stockMeasured.cpuMicros },
  ]);
  // 5c. The same two profiles by the code that ran (self time): which packages and functions
  // tenantbase spends more in than stock PostGraphile, largest first.
  printSelfTimeDifferences("5c. tenantbase beside stock PostGraphile 5", [
    { label: "tenantbase", file: profileFile, requests: measured.result.ok, cpuMicros: measured.cpuMicros },
    { label: "stock PG5", file: stockFile, requests: stockMeasured.result.ok, cpuMicros: stockMeasured.cpuMicros },
  ]);
}
// 6. The same load through each reference server: their CPU per request beside ours.
const perRequest: [string, number][] = [];
if (PARTS.has("profile")) {
  for (const [label, s, query] of [["tenantbase", server, LIST], ["stock PostGraphile 5", stock, LIST_STOCK], ["hand-written node:http", plain, LIST]] as const) {
    const [before] = treeCpuMs([s.pid]);
    const result = await runLoad(label, CONCURRENCY, SECONDS, viaGraphql(s, query));
    const [after] = treeCpuMs([s.pid]);
    if (before !== null && after !== null) perRequest.push([`${label} (${result.perSecond.toFixed(0)} req/s)`, ((after - before) * 1000) / result.ok]);
  }
  if (perRequest.length) {
    console.log("\n6. server CPU per list request, same load, one after the other (/proc; µs)");
    for (const [label, micros] of perRequest) console.log(`  ${label.padEnd(44)} ${micros.toFixed(0).padStart(6)}`);
  }
}
const ratio = (a: LoadResult, b: LoadResult) => (a.perSecond / b.perSecond).toFixed(2);
const lines: string[] = [];
if (list.length) lines.push(
  `list: GraphQL ÷ SQL (RLS), 1 process     ${ratio(list[0], list[2])}   (goal: at least 0.6)`,
  `list: GraphQL ÷ SQL (RLS), ${PROCESSES} processes    ${ratio(list[1], list[2])}`,
  `list: hand-written node:http ÷ SQL       ${ratio(list[6], list[2])}   (the ceiling for a Node server in front of this SQL)`,
  `list: stock PostGraphile 5 ÷ SQL         ${ratio(list[7], list[2])}`,
  `list: GraphQL ÷ stock PostGraphile 5     ${ratio(list[0], list[7])}   (goal: >= 0.9; what tenantbase adds to PostGraphile, session check included)`,
  `list: RLS ÷ explicit WHERE, both after the session and membership checks   ${ratio(list[2], list[4])}   (goal: >= 0.98; what RLS itself costs)`,
  `list: RLS ÷ explicit WHERE with no session check at all                     ${ratio(list[2], list[3])}   (the rest is the check)`,
  `list: RLS ÷ WHERE after the same checks and a role switch of its own        ${ratio(list[2], list[5])}   (the policies alone)`,
  `list: the owner's role switch: with ÷ without                               ${ratio(list[5], list[4])}`,
  `list: ${PROCESSES} processes ÷ 1                     ${ratio(list[1], list[0])}`,
);
if (page.length) lines.push(
  `page: GraphQL ÷ SQL (RLS)                 ${ratio(page[0], page[2])} (1 process); ${ratio(page[1], page[2])} (${PROCESSES})`,
  `page: GraphQL ÷ stock PostGraphile 5     ${ratio(page[0], page[3])}   (goal: >= 0.9)`,
);
if (credits.length) lines.push(`reserve+capture: GraphQL ÷ SQL           ${ratio(credits[0], credits[2])} (1 process); ${ratio(credits[1], credits[2])} (${PROCESSES})`);
lines.push(`(machine: ${availableParallelism()} cores, load average ${loadavg().map((l) => l.toFixed(1)).join(" ")} at the end of the run)`);
console.log("\n" + lines.map((l) => "  " + l).join("\n"));

const m = members[7];
const plan = await asUser(pool, m.userId, m.sessionId, `explain (analyze, buffers, costs off) ${LIST_SQL}`, [m.organizationId]);
console.log("\n  plan as app_user under RLS:\n" + plan.map((r: any) => "    " + r["QUERY PLAN"]).join("\n"));
const plan2 = await ownerPool.query(`explain (analyze, buffers, costs off) ${LIST_SQL}`, [m.organizationId]);
console.log("  plan as owner, explicit WHERE:\n" + plan2.rows.map((r: any) => "    " + r["QUERY PLAN"]).join("\n"));

await Promise.all([server, serverN, plain, stock].map((s) => s.stop()));
await root.end();
await pool.end();
await ownerPool.end();
await db.stop();
