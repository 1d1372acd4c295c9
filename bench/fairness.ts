// npm run bench:fairness — the noisy-neighbour benchmark (issue 25, section B). A witness tenant
// (the owner of organization 2) sends one light query at a time, `{ currentUser { id } }`; for
// each attack in bench/fairness/index.ts its p50/p99 is measured at rest and then during the
// attack, side by side, and compared with the goal: during-attack p99 < 3 × resting p99 + 50 ms.
// The resting baseline is measured just before each attack (the VM's speed drifts). The server
// runs as `npm start` does (NODE_ENV=production, one process, request pool of 10), once with the
// fair-share gate on and, for comparison in the same run, once with FAIR_SHARE=off (the Stripe
// webhook's own limits stay on in both).
//
// Env: BENCH_REST_SECONDS (default 3), BENCH_ATTACK_SECONDS (default 4), BENCH_FAIR_SHARE
// (on|off|both, default both), BENCH_ATTACKS (comma-separated names to run, default all),
// BENCH_ROOT_DATABASE_URL (else an embedded cluster under .data/bench).

import { ensureDataset } from "./lib/dataset.ts";
import { benchToken, startBenchServer } from "./lib/server.ts";
import { benchMembers } from "./lib/sql.ts";
import { post } from "./lib/http-client.ts";
import { ATTACKS } from "./fairness/index.ts";

const REST_SECONDS = Number(process.env.BENCH_REST_SECONDS ?? 3);
const ATTACK_SECONDS = Number(process.env.BENCH_ATTACK_SECONDS ?? 4);
const RAMP_MS = 500;
const MODES = (process.env.BENCH_FAIR_SHARE ?? "both") === "both" ? ["on", "off"] : [process.env.BENCH_FAIR_SHARE!];
const ONLY = process.env.BENCH_ATTACKS?.split(",").map((name) => name.trim().toLowerCase());
const attacks = ATTACKS.filter((attack) => !ONLY || ONLY.some((name) => attack.name.toLowerCase().includes(name)));
const POOL_SIZE = 10;
const WEBHOOK_SECRET = "whsec_benchfairness0123456789abcdef";

const db = await ensureDataset("fairness", {
  organizations: 3,
  projectsPerOrganization: 1,
  generations: 60_000,
  bigOrganizationGenerations: 60_000,
  days: 30,
});
const [attacker, witness] = await benchMembers(db.ownerUrl);
const attackerToken = benchToken(attacker.userId, attacker.sessionId);
const witnessToken = benchToken(witness.userId, witness.sessionId);

interface Latencies {
  p50: number;
  p99: number;
  ok: number;
  failed: number;
  firstFailure?: string;
}

function percentile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] : NaN;
}

/** The witness: one light query at a time for `seconds`. */
async function witnessFor(url: URL, seconds: number): Promise<Latencies> {
  const body = JSON.stringify({ query: "{ currentUser { id } }" });
  const headers = { "content-type": "application/json", accept: "application/json", authorization: `Bearer ${witnessToken}` };
  const latencies: number[] = [];
  let failed = 0;
  let firstFailure: string | undefined;
  const deadline = performance.now() + seconds * 1000;
  while (performance.now() < deadline) {
    const started = performance.now();
    try {
      const answer = await post(url, body, headers);
      if (answer.status !== 200 || !answer.body.includes(witness.userId)) throw new Error(`HTTP ${answer.status}: ${answer.body.slice(0, 200)}`);
      latencies.push(performance.now() - started);
    } catch (error) {
      failed += 1;
      firstFailure ??= (error as Error).message;
    }
  }
  latencies.sort((a, b) => a - b);
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), ok: latencies.length, failed, firstFailure };
}

interface Row {
  attack: string;
  mode: string;
  rest: Latencies;
  during: Latencies;
  goalMs: number;
  met: boolean;
  outcomes: Record<string, number>;
}

const rows: Row[] = [];
const started = Date.now();
for (const mode of MODES) {
  process.env.FAIR_SHARE = mode;
  process.env.STRIPE_SECRET_KEY = "sk_test_benchfairness";
  process.env.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET;
  process.env.BENCH_LOG_LEVEL ??= "warn";
  const server = await startBenchServer(db.ownerUrl, db.authUrl, POOL_SIZE, 1);
  const graphqlUrl = new URL(server.url);
  try {
    await witnessFor(graphqlUrl, 1); // warm up
    for (const attack of attacks) {
      const rest = await witnessFor(graphqlUrl, REST_SECONDS);
      const running = await attack.start({ baseUrl: graphqlUrl.origin, graphqlUrl, attacker, attackerToken, webhookSecret: WEBHOOK_SECRET });
      await new Promise((resolve) => setTimeout(resolve, RAMP_MS));
      const during = await witnessFor(graphqlUrl, ATTACK_SECONDS);
      const outcomes = await running.stop();
      const goalMs = 3 * rest.p99 + 50;
      const row = { attack: attack.name, mode, rest, during, goalMs, met: during.p99 < goalMs && during.failed === 0, outcomes };
      rows.push(row);
      console.log(
        `  ${attack.name} (fair share ${mode}): rest p50/p99 ${rest.p50.toFixed(1)}/${rest.p99.toFixed(1)} ms, during ${during.p50.toFixed(1)}/${during.p99.toFixed(1)} ms`,
      );
    }
  } finally {
    await server.stop();
  }
}

const f = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : "—");
console.log(`\nbench:fairness — witness { currentUser { id } }, one at a time; rest ${REST_SECONDS} s then attack ${ATTACK_SECONDS} s each; pool ${POOL_SIZE}, 1 process`);
console.log(`goal: during-attack p99 < 3 × resting p99 + 50 ms (and every witness request answered)\n`);
console.log("| attack | fair share | rest p50 | rest p99 | attack p50 | attack p99 | goal p99 < | met | witness ok/failed | attacker answers |");
console.log("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |");
for (const r of rows) {
  const answers = Object.entries(r.outcomes).sort().map(([k, v]) => `${k}×${v}`).join(" ");
  console.log(
    `| ${r.attack} | ${r.mode} | ${f(r.rest.p50)} | ${f(r.rest.p99)} | ${f(r.during.p50)} | ${f(r.during.p99)} | ${f(r.goalMs)} | ${r.met ? "met" : "NOT met"} | ${r.during.ok}/${r.during.failed} | ${answers} |`,
  );
}
for (const r of rows) if (r.during.firstFailure) console.log(`  ${r.attack} (${r.mode}): first witness failure: ${r.during.firstFailure}`);
console.log(`\n(total ${((Date.now() - started) / 1000).toFixed(0)} s of measuring)`);
await db.stop();
process.exit(0);
