// npm run bench:credits — reserve + capture pairs per second, for one organization (every client
// on the same credit account: contended) and for 50 organizations (spread), through GraphQL over
// HTTP and through `pg` calling the same SQL functions with the same transaction-local settings,
// each beside the same load on organizations with every credit control configured (three spend
// caps with a per-reservation limit, four usage alerts, an auto top-up rule with a saved card),
// measured interleaved in one run. The controls' thresholds are not crossed during the run (the
// balances are far above them): this is the cost every spend pays for being checked. Env: BENCH_SECONDS (per measurement, default 8), BENCH_ROUNDS
// (default 2), BENCH_CONCURRENCY (default 16).

import pg from "pg";
import { ensureDataset } from "./lib/dataset.ts";
import { interleaved, printTable } from "./lib/load.ts";
import { benchToken, startBenchServer } from "./lib/server.ts";
import { asUser, authPool, benchMembers } from "./lib/sql.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);

const db = await ensureDataset("credits", { organizations: 102, projectsPerOrganization: 1, generations: 0, bigOrganizationGenerations: 0, days: 1 });
const owner = new pg.Client({ connectionString: db.ownerUrl });
await owner.connect();
await owner.query(`select app_private.grant_credits(organization_id, 1000000000000, 'manual', null, 'bench-topup')
  from app_private.bench_org b where not exists (select 1 from app_public.credit_accounts a where a.organization_id = b.organization_id and a.available > 0)`);
await configureControls(owner);
await owner.end();

const members = await benchMembers(db.ownerUrl);
const tokens = new Map(members.map((m) => [m.n, benchToken(m.userId, m.sessionId)]));
const server = await startBenchServer(db.ownerUrl, db.authUrl, CONCURRENCY);
const pool = authPool(db.authUrl, CONCURRENCY);
const run = `${process.pid}-${Date.now()}`;
let seq = 0; // idempotency keys unique across rounds
const key = (prefix: string) => `${prefix}-${run}-${seq++}`;
// Organization 0 and 2..51 have no controls; 1 and 52..101 have all of them (configureControls).
const contended = members[0];
const contendedControlled = members[1];
const spread = (i: number) => members[2 + (i % 50)];
const spreadControlled = (i: number) => members[52 + (i % 50)];

// Every control on organizations 1 and 52..101 (bench_org.n), written as the owner (the bench
// measures spending, not the admin mutations): day, week and month caps on the organization with
// a per-reservation limit, a low-balance alert and 50/80/100% alerts on the month cap, and auto
// top-up with a saved card. Idempotent, for a reused dataset.
async function configureControls(client: pg.Client) {
  const controlled = `select organization_id from app_private.bench_org where n = 1 or n between 52 and 101`;
  await client.query(`delete from app_public.credit_spend_caps where organization_id in (${controlled})`);
  await client.query(`
    insert into app_public.credit_spend_caps (organization_id, scope, period, max_credits, max_per_reservation)
    select o.organization_id, 'organization', p.period, 1000000000000, 1000000
    from (${controlled}) o, unnest(array['day', 'week', 'month']::app_public.credit_spend_cap_period[]) as p (period)`);
  await client.query(`delete from app_public.credit_alert_thresholds where organization_id in (${controlled})`);
  await client.query(`
    insert into app_public.credit_alert_thresholds (organization_id, kind, balance_at_most)
    select organization_id, 'low_balance', 1000 from (${controlled}) o`);
  await client.query(`
    insert into app_public.credit_alert_thresholds (organization_id, kind, cap_id, percent)
    select c.organization_id, 'cap_used', c.id, p.percent
    from app_public.credit_spend_caps c, unnest(array[50, 80, 100]) as p (percent)
    where c.organization_id in (${controlled}) and c.period = 'month'`);
  const pack = await client.query(`
    insert into app_public.credit_packages (name, credits, stripe_price_id, unit_amount, currency)
    values ('bench pack', 10000, 'price_bench_pack', 1000, 'usd')
    on conflict (stripe_price_id) do update set unit_amount = excluded.unit_amount returning id`);
  await client.query(`
    insert into app_private.auto_top_up_payment_methods (organization_id, stripe_payment_method_id, stripe_setup_intent_id, stripe_customer_id, saved_at)
    select organization_id, 'pm_bench', 'seti_bench', 'cus_bench', now() from (${controlled}) o
    on conflict (organization_id) do nothing`);
  await client.query(`
    insert into app_public.auto_top_up_rules (organization_id, credit_package_id, threshold, max_per_month, monthly_limit_amount, currency)
    select organization_id, $1, 1000, 5, 100000, 'usd' from (${controlled}) o
    on conflict (organization_id) do nothing`, [pack.rows[0].id]);
}

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
  ["contended (1 org)  GraphQL, every control", () => viaGraphql(contendedControlled, key("g1c"))],
  ["contended (1 org)  SQL through pg (app_user, RLS)", () => viaSql(contended, key("s1"))],
  ["contended (1 org)  SQL, every control", () => viaSql(contendedControlled, key("s1c"))],
  ["spread (50 orgs)   GraphQL over HTTP", (_c, i) => viaGraphql(spread(i), key("g50"))],
  ["spread (50 orgs)   GraphQL, every control", (_c, i) => viaGraphql(spreadControlled(i), key("g50c"))],
  ["spread (50 orgs)   SQL through pg (app_user, RLS)", (_c, i) => viaSql(spread(i), key("s50"))],
  ["spread (50 orgs)   SQL, every control", (_c, i) => viaSql(spreadControlled(i), key("s50c"))],
]);
printTable("reserve + capture pairs per second", results);
const ratio = (a: number, b: number) => (results[a].perSecond / results[b].perSecond).toFixed(2);
console.log(`\n  GraphQL / SQL: contended ${ratio(0, 2)}, spread ${ratio(4, 6)}`);
console.log(`  with every control / without (goal ≥ 0.90): contended GraphQL ${ratio(1, 0)}, SQL ${ratio(3, 2)}; spread GraphQL ${ratio(5, 4)}, SQL ${ratio(7, 6)}`);

const check = new pg.Client({ connectionString: db.ownerUrl });
await check.connect();
const bad = await check.query("select count(*)::int as n from app_private.credit_ledger_discrepancies()");
console.log(`  ledger check after the run: ${bad.rows[0].n === 0 ? "every balance equals its ledger" : `${bad.rows[0].n} organizations DIFFER`}`);
// Proof that the controls were on the path: the controlled organizations' caps counted the spends.
const capped = await check.query("select count(distinct organization_id)::int as orgs, coalesce(sum(window_spent), 0)::bigint as spent from app_public.credit_spend_caps where window_spent > 0");
console.log(`  spend caps that counted the run: ${capped.rows[0].orgs} organizations, ${capped.rows[0].spent} credits`);
await check.end();
await pool.end();
await server.stop();
await db.stop();
