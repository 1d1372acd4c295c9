// node bench/request-start.ts — what opening a request costs PostgreSQL, on one connection, in
// backend CPU (from /proc, so it holds on a busy machine better than wall time): the server's
// start statement with and without app_hidden.start_request(), against start_request() called
// in a PL/pgSQL loop inside one transaction. The loop is how "21 µs alone" was measured; the
// server calls it once per transaction, and PL/pgSQL prepares its expressions and checks its
// cached plans again in every new transaction, which a loop pays once. The difference between
// the two is that per-transaction price. Same data set as bench:api (BENCH_GENERATIONS,
// BENCH_PROJECTS_PER_ORG); BENCH_ITERATIONS (default 6,000 per way and round), BENCH_ROUNDS. Then
// the membership lookup's two forms side by side (the fast path of start_request()).

import pg from "pg";
import { readFileSync } from "node:fs";
import path from "node:path";
import { projectRoot } from "../core/paths.ts";
import { ensureDataset } from "./lib/dataset.ts";
import { benchMembers } from "./lib/sql.ts";
import { treeCpuMs } from "./lib/cpu.ts";
import { startStatement } from "../server/request-transaction.ts";

const GENERATIONS = Number(process.env.BENCH_GENERATIONS ?? 1_000_000);
const PROJECTS = Number(process.env.BENCH_PROJECTS_PER_ORG ?? 1000);
const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 6000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const DATASET = GENERATIONS === 1_000_000 && PROJECTS === 1000 ? "api" : `api_${GENERATIONS}_${PROJECTS}`;
const db = await ensureDataset(DATASET, { organizations: 1000, projectsPerOrganization: PROJECTS, generations: GENERATIONS, bigOrganizationGenerations: GENERATIONS / 1000, days: 90 });
const members = await benchMembers(db.ownerUrl);

const client = new pg.Client({ connectionString: db.authUrl });
await client.connect();
const backend: number = (await client.query("select pg_backend_pid() as pid")).rows[0].pid;
await client.query("set jit_optimize_above_cost = -1");

// 50 members in turn, each session already recorded as used this minute (session_is_live writes
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

// calls: start_request() calls per transaction (the loop way makes 1,000 in each)
type Way = { label: string; calls: number; run: (i: number) => Promise<void> };
const ways: Way[] = [
  { label: "begin; settings; commit (no check)", calls: 1, run: (i) => open(settingsOf(i), false) },
  { label: "begin; settings; start_request(); commit (the server's)", calls: 1, run: (i) => open(settingsOf(i)) },
  {
    // No session id (as a job acting for a user): start_request() skips session_is_live(), so
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
];

for (let i = 0; i < active.length; i++) await ways[1].run(i);
// backend CPU per transaction of each way, µs, averaged over the rounds
const perTransaction = ways.map(() => 0);
for (let round = 0; round < ROUNDS; round++) {
  for (const [w, way] of ways.entries()) {
    // the loop way runs fewer transactions (30 of 1,000 calls for 6,000 iterations)
    const transactions = way.calls === 1 ? ITERATIONS : Math.ceil(ITERATIONS / 200);
    const [before] = treeCpuMs([backend]);
    for (let i = 0; i < transactions; i++) await way.run(i);
    const [after] = treeCpuMs([backend]);
    if (before === null || after === null) throw new Error("the backend's CPU is not readable: run against a local PostgreSQL");
    perTransaction[w] += ((after - before) * 1000) / transactions / ROUNDS;
  }
}

console.log(`\nopening a request, one connection, ${ROUNDS} rounds interleaved (backend CPU from /proc; µs)`);
console.log(`  ${"".padEnd(58)} ${"per txn".padStart(9)}`);
for (const [w, way] of ways.entries()) console.log(`  ${way.label.padEnd(58)} ${perTransaction[w].toFixed(1).padStart(9)}`);
const [bare, server, noSession, loop] = perTransaction;
// A loop transaction is the server's transaction plus a DO block of 1,000 calls (its compilation spread over them).
const warmCall = (loop - server) / 1000;
console.log(`\n  start_request() in the server's transaction (with ÷ without the call): ${(server - bare).toFixed(1)} µs`);
console.log(`  start_request() per call in a warm transaction (the loop):            ${warmCall.toFixed(1)} µs`);
console.log(`  what the first call of a transaction pays on top:                      ${(server - bare - warmCall).toFixed(1)} µs`);
console.log(`  of the call in the server's transaction: the session probe ${(server - noSession).toFixed(1)} µs, the membership lookup and settings ${(noSession - bare).toFixed(1)} µs`);

// The membership lookup's two forms, measured against each other in the same run: the file's
// (the memberships alone unless one of the caller's organizations requires SSO or MFA) and the
// same function with the policy clauses evaluated on every request (its form before the fast
// path). Each is installed in turn on this data set, interleaved; the file's goes back at the end.
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
const root = new pg.Client({ connectionString: db.ownerUrl });
await root.connect();
const forms: [string, string][] = [["memberships alone, policies only where set (the file's)", fileFunction], ["policy clauses on every request (before)", always]];
const formTotals = forms.map(() => 0);
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const [f, [, sql]] of forms.entries()) {
      await root.query(sql);
      for (let i = 0; i < active.length; i++) await ways[1].run(i); // plans made again after the replacement
      const [before] = treeCpuMs([backend]);
      for (let i = 0; i < ITERATIONS; i++) await ways[1].run(i);
      const [after] = treeCpuMs([backend]);
      formTotals[f] += ((after! - before!) * 1000) / ITERATIONS / ROUNDS;
    }
  }
} finally {
  await root.query(fileFunction);
  await root.end();
}
console.log(`\nthe server's transaction with each form of the membership lookup (backend CPU per transaction, µs; none of these organizations has a policy)`);
for (const [f, [label]] of forms.entries()) console.log(`  ${label.padEnd(58)} ${formTotals[f].toFixed(1).padStart(9)}`);
console.log(`  saved per request: ${(formTotals[1] - formTotals[0]).toFixed(1)} µs`);

await client.end();
await db.stop();
