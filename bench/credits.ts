// npm run bench:credits — reserve + capture pairs per second, for one organization (every client
// on the same credit account: contended) and for 100 organizations (spread), through GraphQL over
// HTTP and through `pg` calling the same SQL functions with the same transaction-local settings,
// measured interleaved in one run. Env: BENCH_SECONDS (per measurement, default 8), BENCH_ROUNDS
// (default 2), BENCH_CONCURRENCY (default 16).

import pg from "pg";
import { ensureDataset } from "./lib/dataset.ts";
import { interleaved, printTable } from "./lib/load.ts";
import { benchToken, startBenchServer } from "./lib/server.ts";
import { asUser, authPool, benchMembers } from "./lib/sql.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);

const db = await ensureDataset("credits", { organizations: 101, projectsPerOrganization: 1, generations: 0, bigOrganizationGenerations: 0, days: 1 });
const owner = new pg.Client({ connectionString: db.ownerUrl });
await owner.connect();
await owner.query(`select app_private.grant_credits(organization_id, 1000000000000, 'manual', null, 'bench-topup') from app_private.bench_org`);
await owner.end();

const members = await benchMembers(db.ownerUrl);
const tokens = new Map(members.map((m) => [m.n, benchToken(m.userId, m.sessionId)]));
const server = await startBenchServer(db.ownerUrl, db.authUrl, CONCURRENCY);
const pool = authPool(db.authUrl, CONCURRENCY);
const run = `${process.pid}-${Date.now()}`;
let seq = 0; // idempotency keys unique across rounds
const key = (prefix: string) => `${prefix}-${run}-${seq++}`;
const contended = members[0];
const spread = (i: number) => members[1 + (i % 100)];

const RESERVE = `mutation ($o: UUID!, $k: String!) { reserveCredits(input: { organizationId: $o, amount: "5", idempotencyKey: $k }) { creditReservation { id } } }`;
const CAPTURE = `mutation ($id: UUID!) { captureCredits(input: { reservationId: $id, amount: "3" }) { creditReservation { status } } }`;

async function viaGraphql(m: (typeof members)[number], key: string) {
  const token = tokens.get(m.n)!;
  const r = await server.graphql(RESERVE, { o: m.organizationId, k: key }, token);
  await server.graphql(CAPTURE, { id: r.reserveCredits.creditReservation.id }, token);
}
async function viaSql(m: (typeof members)[number], key: string) {
  const [r] = await asUser(pool, m.userId, m.sessionId, "select id from app_public.reserve_credits($1, 5, $2)", [m.organizationId, key]);
  await asUser(pool, m.userId, m.sessionId, "select status from app_public.capture_credits($1, 3)", [r.id]);
}

console.log(`bench:credits — ${CONCURRENCY} concurrent clients, ${ROUNDS} x ${SECONDS} s per measurement, interleaved; one op = reserve + capture (2 requests / 2 transactions)`);
const results = await interleaved(ROUNDS, CONCURRENCY, SECONDS, [
  ["contended (1 org)  GraphQL over HTTP", () => viaGraphql(contended, key("g1"))],
  ["contended (1 org)  SQL through pg (app_user, RLS)", () => viaSql(contended, key("s1"))],
  ["spread (100 orgs)  GraphQL over HTTP", (_c, i) => viaGraphql(spread(i), key("g100"))],
  ["spread (100 orgs)  SQL through pg (app_user, RLS)", (_c, i) => viaSql(spread(i), key("s100"))],
]);
printTable("reserve + capture pairs per second", results);
console.log(`\n  GraphQL / SQL: contended ${(results[0].perSecond / results[1].perSecond).toFixed(2)}, spread ${(results[2].perSecond / results[3].perSecond).toFixed(2)}`);

const check = new pg.Client({ connectionString: db.ownerUrl });
await check.connect();
const bad = await check.query("select count(*)::int as n from app_private.credit_ledger_discrepancies()");
console.log(`  ledger check after the run: ${bad.rows[0].n === 0 ? "every balance equals its ledger" : `${bad.rows[0].n} organizations DIFFER`}`);
await check.end();
await pool.end();
await server.stop();
await db.stop();
