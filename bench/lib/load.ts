// Closed-loop load: `concurrency` clients each run `op` back to back for `seconds`; latencies in
// milliseconds. Percentiles are nearest-rank.

export interface LoadResult {
  label: string;
  ok: number;
  errors: number;
  seconds: number;
  perSecond: number;
  p50: number;
  p95: number;
  p99: number;
  firstError?: string;
}

export async function runLoad(label: string, concurrency: number, seconds: number, op: (client: number, i: number) => Promise<void>): Promise<LoadResult> {
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const deadline = performance.now() + seconds * 1000;
  const started = performance.now();
  let i = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, client) => {
      while (performance.now() < deadline) {
        const t = performance.now();
        try {
          await op(client, i++);
          latencies.push(performance.now() - t);
        } catch (error) {
          errors++;
          firstError ??= String((error as Error)?.message ?? error);
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)] : NaN);
  return { label, ok: latencies.length, errors, seconds: elapsed, perSecond: latencies.length / elapsed, p50: pct(50), p95: pct(95), p99: pct(99), firstError };
}

export function printTable(title: string, results: LoadResult[]): void {
  console.log(`\n${title}`);
  console.log(`  ${"".padEnd(52)} ${"req/s".padStart(9)} ${"p50 ms".padStart(8)} ${"p95 ms".padStart(8)} ${"p99 ms".padStart(8)} ${"ok".padStart(7)} ${"errors".padStart(7)}`);
  for (const r of results) {
    console.log(
      `  ${r.label.padEnd(52)} ${r.perSecond.toFixed(1).padStart(9)} ${r.p50.toFixed(2).padStart(8)} ${r.p95.toFixed(2).padStart(8)} ${r.p99.toFixed(2).padStart(8)} ${String(r.ok).padStart(7)} ${String(r.errors).padStart(7)}`,
    );
    if (r.firstError) console.log(`      first error: ${r.firstError.slice(0, 200)}`);
  }
}

/** Runs each (label, op) in turn, `rounds` times interleaved, and merges per label: the VM's speed drifts, so only interleaved runs compare. */
export async function interleaved(
  rounds: number,
  concurrency: number,
  seconds: number,
  ops: [string, (client: number, i: number) => Promise<void>][],
): Promise<LoadResult[]> {
  const all = new Map<string, LoadResult[]>();
  for (let round = 0; round < rounds; round++) {
    for (const [label, op] of ops) {
      const r = await runLoad(label, concurrency, seconds, op);
      all.set(label, [...(all.get(label) ?? []), r]);
    }
  }
  return ops.map(([label]) => {
    const rs = all.get(label)!;
    const total = rs.reduce((s, r) => s + r.ok, 0);
    const secs = rs.reduce((s, r) => s + r.seconds, 0);
    const med = (k: "p50" | "p95" | "p99") => rs.map((r) => r[k]).sort((a, b) => a - b)[Math.floor(rs.length / 2)];
    return { label, ok: total, errors: rs.reduce((s, r) => s + r.errors, 0), seconds: secs, perSecond: total / secs, p50: med("p50"), p95: med("p95"), p99: med("p99"), firstError: rs.find((r) => r.firstError)?.firstError };
  });
}
