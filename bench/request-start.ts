// node bench/request-start.ts — what opening a request costs PostgreSQL, on one connection, in
// backend CPU (from /proc/<pid>/schedstat, so it holds on a busy machine better than wall time): the server's
// start statement with and without app_hidden.start_request(), against start_request() called
// in a PL/pgSQL loop inside one transaction. The loop is how "21 µs alone" was measured; the
// server calls it once per transaction, and PL/pgSQL prepares its expressions and checks its
// cached plans again in every new transaction, which a loop pays once. The difference between
// the two is that per-transaction price. Same data set as bench:api (BENCH_GENERATIONS,
// BENCH_PROJECTS_PER_ORG); BENCH_ITERATIONS (default 2,000 per way and round), BENCH_ROUNDS
// (default 10). The machine's speed drifts between rounds (a virtual machine's neighbours), so
// differences are taken within each round and their median printed.
// Beside them, the floor: the cheapest function a check could be (an empty SECURITY DEFINER
// PL/pgSQL function), and the same reading one session row and one membership row by index. Then
// start_request()'s earlier forms against the file's, each installed in turn: the session probe
// as its own SECURITY DEFINER call, and the policy clauses on every request. Last, the same
// reads without PL/pgSQL at all: one prepared statement with a generic plan, on a connection of
// the owner's (no role switch), against start_request() on that connection.

import pg from "pg";
import { readFileSync } from "node:fs";
import path from "node:path";
import { projectRoot } from "../core/paths.ts";
import { ensureDataset } from "./lib/dataset.ts";
import { benchMembers } from "./lib/sql.ts";
import { processCpuUs } from "./lib/cpu.ts";
import { startStatement } from "../server/request-transaction.ts";

const GENERATIONS = Number(process.env.BENCH_GENERATIONS ?? 1_000_000);
const PROJECTS = Number(process.env.BENCH_PROJECTS_PER_ORG ?? 1000);
const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 2000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 10);
const DATASET = GENERATIONS === 1_000_000 && PROJECTS === 1000 ? "api" : `api_${GENERATIONS}_${PROJECTS}`;
const db = await ensureDataset(DATASET, { organizations: 1000, projectsPerOrganization: PROJECTS, generations: GENERATIONS, bigOrganizationGenerations: GENERATIONS / 1000, days: 90 });
const members = await benchMembers(db.ownerUrl);

const client = new pg.Client({ connectionString: db.authUrl });
await client.connect();
const backend: number = (await client.query("select pg_backend_pid() as pid")).rows[0].pid;
await client.query("set jit_optimize_above_cost = -1");

// 50 members in turn, each session already recorded as used this minute (start_request() writes
// last_used_at at most once a minute per session: that write is measured by nobody's request
// but the first, and here it would be every transaction's).
const active = members.slice(0, 50);
/** The settings the server sends for a signed-in member (server/preset.ts). */
const settingsOf = (i: number) => {
  const m = active[i % active.length];
  return { role: "app_user", "jwt.claims.user_id": m.userId, "jwt.claims.session_id": m.sessionId, "tenantbase.request_id": `bench-${i}` };
};

/** One request opened as the server opens it (or without the check), then committed. */
async function open(settings: Record<string, string>, check = true, body?: string) {
  await client.query(startStatement(settings, check));
  if (body) await client.query(body);
  await client.query("commit");
}

/** A request opened with another call in start_request()'s place, in the same message. */
async function openWith(settings: Record<string, string>, call: string) {
  await client.query(`${startStatement(settings, false)}; ${call}`);
  await client.query("commit");
}

// The floor, in a schema of its own on the bench's database: what any check written as a
// PL/pgSQL function pays per transaction before it decides anything.
const root = new pg.Client({ connectionString: db.ownerUrl });
await root.connect();
await root.query(`
  create schema if not exists bench_floor;
  grant usage on schema bench_floor to app_user;
  create or replace function bench_floor.empty() returns void
    language plpgsql volatile security definer set search_path = pg_catalog, public
  as $$ begin end $$;
  create or replace function bench_floor.two_probes() returns void
    language plpgsql volatile security definer set search_path = pg_catalog, public
  as $$
  declare
    v_session timestamptz;
    v_organization uuid;
  begin
    select s.last_used_at into v_session from app_private.sessions s where s.id = app_public.current_session_id();
    select m.organization_id into v_organization from app_public.organization_members m where m.user_id = app_public.current_user_id() limit 1;
  end $$;
  grant execute on function bench_floor.empty(), bench_floor.two_probes() to app_user;`);

// calls: start_request() calls per transaction (the loop way makes 1,000 in each)
type Way = { label: string; calls: number; run: (i: number) => Promise<void> };
const ways: Way[] = [
  { label: "begin; settings; commit (no check)", calls: 1, run: (i) => open(settingsOf(i), false) },
  { label: "begin; settings; start_request(); commit (the server's)", calls: 1, run: (i) => open(settingsOf(i)) },
  {
    // No session id (as a job acting for a user): start_request() skips the session read, so
    // this way less the previous one is the session probe, and this less the first way is the
    // membership lookup.
    label: "the same without a session id (membership lookup only)",
    calls: 1,
    run: (i) => {
      const { ["jwt.claims.session_id"]: _session, ...settings } = settingsOf(i);
      return open(settings);
    },
  },
  {
    // 1,000 calls in one transaction: the per-call price once the transaction is warm
    label: "start_request() in a PL/pgSQL loop, 1,000 per transaction",
    calls: 1000,
    run: (i) => open(settingsOf(i), true, "do $$ begin for i in 1..1000 loop perform app_hidden.start_request(); end loop; end $$"),
  },
  { label: "floor: an empty SECURITY DEFINER PL/pgSQL function", calls: 1, run: (i) => openWith(settingsOf(i), "select bench_floor.empty()") },
  { label: "floor: the same reading a session and a membership row", calls: 1, run: (i) => openWith(settingsOf(i), "select bench_floor.two_probes()") },
];

/** CPU per transaction of a backend (the bench's connection unless given) over one batch of a way, µs. */
async function measure(run: (i: number) => Promise<void>, transactions: number, pid = backend): Promise<number> {
  const before = processCpuUs(pid);
  for (let i = 0; i < transactions; i++) await run(i);
  const after = processCpuUs(pid);
  if (before === null || after === null) throw new Error("the backend's CPU is not readable: run against a local PostgreSQL");
  return (after - before) / transactions;
}
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
/** The median over rounds of a quantity computed from each round's own measurements. */
const perRound = (rounds: number[][], f: (round: number[]) => number) => median(rounds.map(f));

for (let i = 0; i < active.length; i++) await ways[1].run(i);
// PostgreSQL's own account of the call on this quiet connection (the goal's measure), beside the
// same under bench:api's load: pg_stat_statements, reset now, read after the rounds.
const superuser = new pg.Client({ connectionString: db.rootUrl });
await superuser.connect();
await superuser.query("create extension if not exists pg_stat_statements");
await superuser.query("select pg_stat_statements_reset()");
// rounds[r][w]: backend CPU per transaction of way w in round r, µs
const rounds: number[][] = [];
for (let round = 0; round < ROUNDS; round++) {
  const row: number[] = [];
  // the loop way runs fewer transactions (10 of 1,000 calls for 2,000 iterations)
  for (const way of ways) row.push(await measure(way.run, way.calls === 1 ? ITERATIONS : Math.ceil(ITERATIONS / 200)));
  rounds.push(row);
}

console.log(`\nopening a request, one connection, ${ROUNDS} rounds interleaved (backend CPU from /proc/<pid>/schedstat; µs; differences: median over rounds of each round's own)`);
console.log(`  ${"".padEnd(58)} ${"per txn".padStart(9)}`);
for (const [w, way] of ways.entries()) console.log(`  ${way.label.padEnd(58)} ${mean(rounds.map((r) => r[w])).toFixed(1).padStart(9)}`);
const [BARE, SERVER, NO_SESSION, LOOP, EMPTY, PROBES] = [0, 1, 2, 3, 4, 5];
const d = (f: (r: number[]) => number) => perRound(rounds, f).toFixed(1);
// A loop transaction is the server's transaction plus a DO block of 1,000 calls (its compilation spread over them).
const warm = (r: number[]) => (r[LOOP] - r[SERVER]) / 1000;
console.log(`\n  start_request() in the server's transaction (with ÷ without the call): ${d((r) => r[SERVER] - r[BARE])} µs`);
console.log(`  start_request() per call in a warm transaction (the loop):            ${d(warm)} µs`);
console.log(`  what the first call of a transaction pays on top:                      ${d((r) => r[SERVER] - r[BARE] - warm(r))} µs`);
console.log(`  of the call in the server's transaction: the session probe ${d((r) => r[SERVER] - r[NO_SESSION])} µs, the membership lookup and settings ${d((r) => r[NO_SESSION] - r[BARE])} µs`);
const { rows: statementRows } = await superuser.query(
  `select sum(calls)::int as calls, sum(total_exec_time) / sum(calls) as ms from pg_stat_statements
   where query = 'select app_hidden.start_request()' and dbid = (select oid from pg_database where datname = current_database())`,
);
await superuser.end();
console.log(`  pg_stat_statements: select app_hidden.start_request(), ${statementRows[0].calls} calls, mean execution ${Number(statementRows[0].ms).toFixed(4)} ms`);
console.log(`  the floor: an empty function ${d((r) => r[EMPTY] - r[BARE])} µs, one reading two rows by index ${d((r) => r[PROBES] - r[BARE])} µs; start_request() above that: ${d((r) => r[SERVER] - r[PROBES])} µs`);

// start_request()'s forms, measured against each other in the same run: the file's (the session
// read from live_sessions in the function itself; the memberships alone unless one of the
// caller's organizations requires SSO or MFA), the same with the session probe as its own call of
// session_is_live() (the form before), and the same with the policy clauses evaluated on every
// request (the form before the fast path). Each is installed in turn on this data set,
// interleaved; the file's goes back at the end.
const file = readFileSync(path.join(projectRoot, "db/functions/010-foundation/request.sql"), "utf8");
const fileFunction = file.slice(file.indexOf("create or replace function app_hidden.start_request()"), file.indexOf("comment on function app_hidden.start_request()"));
const fastStart = fileFunction.indexOf("  -- Fast path:");
const policyStart = fileFunction.indexOf("  if v_policy then\n");
const policyEnd = fileFunction.indexOf("  end if;\n", policyStart);
if (fastStart < 0 || policyStart < 0 || policyEnd < 0) throw new Error("request.sql's start_request() no longer has the fast path this bench compares");
// The policy lookup lives in refresh_caller_organizations(); the old form ran it inline every time.
const refresh = file.slice(file.indexOf("create or replace function app_hidden.refresh_caller_organizations()"), file.indexOf("comment on function app_hidden.refresh_caller_organizations()"));
const lookupStart = refresh.indexOf("  if v_user_id is not null then\n");
const lookupEnd = refresh.indexOf("  elsif v_api_key_id is not null then");
if (lookupStart < 0 || lookupEnd < 0) throw new Error("request.sql's refresh_caller_organizations() no longer has the lookup this bench compares");
const always =
  fileFunction.slice(0, fastStart) +
  refresh.slice(lookupStart + "  if v_user_id is not null then\n".length, lookupEnd).replace(/^  /gm, "") +
  fileFunction.slice(policyEnd + "  end if;\n".length);
const sessionStart = fileFunction.indexOf("  if v_session_id is not null then\n");
const sessionEnd = fileFunction.indexOf("  end if;\n  -- Fast path:");
if (sessionStart < 0 || sessionEnd < 0) throw new Error("request.sql's start_request() no longer reads the session as this bench expects");
const probeCall =
  fileFunction.slice(0, sessionStart) +
  "  if v_session_id is not null and not app_hidden.session_is_live(v_session_id, v_user_id) then\n" +
  "    perform app_hidden.raise_error('INVALID_TOKEN', 'Session has ended; sign in again.');\n" +
  fileFunction.slice(sessionEnd);
const forms: [string, string][] = [
  ["the file's: one call, policies only where set", fileFunction],
  ["session probe as its own call, session_is_live() (before)", probeCall],
  ["policy clauses on every request (before the fast path)", always],
];
// formRounds[r][f]: the server's transaction with form f installed, round r
const formRounds: number[][] = [];
try {
  for (let round = 0; round < ROUNDS; round++) {
    const row: number[] = [];
    for (const [, sql] of forms) {
      await root.query(sql);
      for (let i = 0; i < active.length; i++) await ways[1].run(i); // plans made again after the replacement
      row.push(await measure(ways[1].run, ITERATIONS));
    }
    formRounds.push(row);
  }
} finally {
  await root.query(fileFunction);
  await root.query("drop schema bench_floor cascade");
  await root.end();
}
console.log(`\nthe server's transaction with each form of start_request() (backend CPU per transaction, µs; none of these organizations has a policy)`);
for (const [f, [label]] of forms.entries()) {
  const saved = f === 0 ? "" : `   the file's saves ${perRound(formRounds, (r) => r[f] - r[0]).toFixed(1)} µs`;
  console.log(`  ${label.padEnd(58)} ${mean(formRounds.map((r) => r[f])).toFixed(1).padStart(9)}${saved}`);
}

// Without PL/pgSQL: the session and the memberships read by one prepared statement (generic plan,
// so nothing is planned per request) that assigns the settings itself, as the owner; against
// start_request() on the same connection. If PL/pgSQL's set-up were the cost, this would be cheaper.
const owner = new pg.Client({ connectionString: db.ownerUrl });
await owner.connect();
const ownerBackend: number = (await owner.query("select pg_backend_pid() as pid")).rows[0].pid;
await owner.query("set jit_optimize_above_cost = -1; set plan_cache_mode = force_generic_plan");
await owner.query(`prepare open_request(uuid, uuid) as
  select l.id is not null as live, l.use_unrecorded, mm.policy
  from (select set_config('tenantbase.organization_ids', coalesce(array_agg(m.organization_id), '{}')::text, true) as member,
               set_config('tenantbase.admin_organization_ids', coalesce(array_agg(m.organization_id) filter (where m.role >= 'admin'), '{}')::text, true) as admin,
               coalesce(bool_or(o.sso_required or o.mfa_required_at is not null), false) as policy
        from app_public.organization_members m
        join app_public.organizations o on o.id = m.organization_id
        where m.user_id = $1 and o.deleted_at is null) mm
  left join app_private.live_sessions l on l.id = $2 and l.user_id = $1`);
const ownerSettings = (i: number) => {
  const { role: _role, ...settings } = settingsOf(i);
  return settings;
};
const ownerWays: [string, (i: number) => string][] = [
  ["begin; settings; commit (no check)", (i) => startStatement(ownerSettings(i), false)],
  ["the same reads as one prepared statement", (i) => `${startStatement(ownerSettings(i), false)}; execute open_request('${active[i % active.length].userId}', '${active[i % active.length].sessionId}')`],
  ["start_request()", (i) => startStatement(ownerSettings(i))],
];
const ownerRounds: number[][] = [];
for (let round = 0; round < ROUNDS; round++) {
  const row: number[] = [];
  for (const [, statement] of ownerWays) {
    const run = async (i: number) => {
      await owner.query(statement(i));
      await owner.query("commit");
    };
    for (let i = 0; i < active.length; i++) await run(i);
    row.push(await measure(run, ITERATIONS, ownerBackend));
  }
  ownerRounds.push(row);
}
await owner.end();
console.log(`\nthe same work with and without PL/pgSQL, on a connection of the owner's (backend CPU per transaction, µs)`);
for (const [w, [label]] of ownerWays.entries()) {
  const over = w === 0 ? "" : `   over the bare transaction: ${perRound(ownerRounds, (r) => r[w] - r[0]).toFixed(1)} µs`;
  console.log(`  ${label.padEnd(58)} ${mean(ownerRounds.map((r) => r[w])).toFixed(1).padStart(9)}${over}`);
}

await client.end();
await db.stop();
