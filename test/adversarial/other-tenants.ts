// The "other tenants still served" check shared by the adversarial tests: while one tenant runs
// an attack over and over, a second tenant's simple query is timed, and its latency is compared
// with its idle baseline measured moments before in the same test. A ratio, not an absolute
// time: the machine's speed drifts, the relation between the two does not.

import { performance } from "node:perf_hooks";

export interface ServedReport {
  baselineP50Ms: number;
  underAttackP50Ms: number;
  underAttackMaxMs: number;
  samples: number;
  attacks: number;
  /** What each attack resolved to (for assertions on the attack's own answer). */
  attackResults: unknown[];
}

const VICTIM_QUERY = "{ currentUser { id } }";

async function victimRequest(url: string, token: string): Promise<number> {
  const started = performance.now();
  const response = await fetch(`${url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: VICTIM_QUERY }),
  });
  const body = (await response.json()) as { data?: { currentUser?: { id?: string } | null }; errors?: unknown };
  if (!body.data?.currentUser?.id) throw new Error(`the other tenant was not served: ${JSON.stringify(body)}`);
  return performance.now() - started;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/**
 * Runs `attack` from `attackers` concurrent loops for `durationMs` (each loop finishes the
 * attack it started), while the victim (a signed-in user of another organization) asks
 * `{ currentUser { id } }` back to back. The baseline is the same query, idle, just before.
 */
export async function measureOtherTenantServed(options: {
  url: string;
  victimToken: string;
  attack: () => Promise<unknown>;
  attackers?: number;
  durationMs?: number;
}): Promise<ServedReport> {
  const { url, victimToken, attack } = options;
  for (let i = 0; i < 5; i++) await victimRequest(url, victimToken); // warm up
  const baseline: number[] = [];
  for (let i = 0; i < 20; i++) baseline.push(await victimRequest(url, victimToken));

  const deadline = performance.now() + (options.durationMs ?? 2000);
  const attackResults: unknown[] = [];
  const loops = Array.from({ length: options.attackers ?? 2 }, async () => {
    do attackResults.push(await attack());
    while (performance.now() < deadline);
  });
  let attacking = true;
  const all = Promise.all(loops).finally(() => (attacking = false));
  const during: number[] = [];
  // At least a few samples even when an attack outlives the deadline.
  while (attacking || during.length < 5) during.push(await victimRequest(url, victimToken));
  await all;

  return {
    baselineP50Ms: median(baseline),
    underAttackP50Ms: median(during),
    underAttackMaxMs: Math.max(...during),
    samples: during.length,
    attacks: attackResults.length,
    attackResults,
  };
}

/**
 * The bound: the victim's median latency under attack stays within 20× its idle median plus
 * 50 ms. Generous on purpose (a loaded 2-core machine doubles latencies at random); the attacks
 * it guards against multiplied it by thousands.
 */
export function expectOtherTenantServed(report: ServedReport): void {
  const bound = report.baselineP50Ms * 20 + 50;
  if (!(report.underAttackP50Ms <= bound)) {
    throw new Error(
      `another tenant waited: median ${report.underAttackP50Ms.toFixed(1)} ms under attack against ${report.baselineP50Ms.toFixed(1)} ms idle (bound ${bound.toFixed(1)} ms; ${report.samples} samples, ${report.attacks} attacks)`,
    );
  }
}
