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
  /** CPU milliseconds of the benchmark's processes (client, server, PostgreSQL) per op, when sampled. */
  cpuMsPerOp?: number;
  firstError?: string;
}

let sampleCpu: (() => number) | null = null;
let idleCpuMsPerSecond = 0;
/**
 * Measure CPU per op from now on (see bench/lib/cpu-time.ts). What the processes use while idle
 * (timers, metrics collection, PostgreSQL's background workers), measured first for idleSeconds,
 * is taken off: at a few hundred requests per second it would otherwise count as theirs.
 */
export async function measureCpuWith(sampler: (() => number) | null, idleSeconds = 3): Promise<void> {
  sampleCpu = sampler;
  if (!sampler) return;
  const before = sampler();
  const t = performance.now();
  await new Promise((resolve) => setTimeout(resolve, idleSeconds * 1000));
  idleCpuMsPerSecond = (sampler() - before) / ((performance.now() - t) / 1000);
}

export function idleCpu(): number {
  return idleCpuMsPerSecond;
}

export async function runLoad(label: string, concurrency: number, seconds: number, op: (client: number, i: number) => Promise<void>): Promise<LoadResult> {
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const cpuBefore = sampleCpu?.();
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
  const cpuMsPerOp = cpuBefore === undefined ? undefined : Math.max(0, sampleCpu!() - cpuBefore - idleCpuMsPerSecond * elapsed) / Math.max(1, latencies.length);
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)] : NaN);
  return { label, ok: latencies.length, errors, seconds: elapsed, perSecond: latencies.length / elapsed, p50: pct(50), p95: pct(95), p99: pct(99), cpuMsPerOp, firstError };
}

export function printTable(title: string, results: LoadResult[]): void {
  console.log(`\n${title}`);
  const cpu = results.some((r) => r.cpuMsPerOp !== undefined);
  console.log(`  ${"".padEnd(52)} ${"req/s".padStart(9)} ${"p50 ms".padStart(8)} ${"p95 ms".padStart(8)} ${"p99 ms".padStart(8)} ${"ok".padStart(7)} ${"errors".padStart(7)}${cpu ? " CPU ms/op".padStart(10) : ""}`);
  for (const r of results) {
    console.log(
      `  ${r.label.padEnd(52)} ${r.perSecond.toFixed(1).padStart(9)} ${r.p50.toFixed(2).padStart(8)} ${r.p95.toFixed(2).padStart(8)} ${r.p99.toFixed(2).padStart(8)} ${String(r.ok).padStart(7)} ${String(r.errors).padStart(7)}${r.cpuMsPerOp !== undefined ? r.cpuMsPerOp.toFixed(3).padStart(10) : ""}`,
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
    const cpuMs = rs.every((r) => r.cpuMsPerOp !== undefined) ? rs.reduce((s, r) => s + r.cpuMsPerOp! * r.ok, 0) : undefined;
    return { label, ok: total, errors: rs.reduce((s, r) => s + r.errors, 0), seconds: secs, perSecond: total / secs, p50: med("p50"), p95: med("p95"), p99: med("p99"), cpuMsPerOp: cpuMs === undefined ? undefined : cpuMs / Math.max(1, total), firstError: rs.find((r) => r.firstError)?.firstError };
  });
}
