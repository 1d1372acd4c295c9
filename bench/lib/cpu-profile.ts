// Reads a V8 CPU profile (`node --cpu-prof`) of the API server and says where a request's CPU
// time went. Each sample is charged to one bucket: walking its stack from the leaf towards the
// root, the first frame whose script belongs to a known part of the request path decides (so
// crypto under jsonwebtoken counts as "JWT verify", and a JSON.stringify called by grafast's
// output as "JSON output"). Samples nobody claims stay "node core (http, net, timers)".

import { readFileSync } from "node:fs";

interface CallFrame {
  functionName: string;
  url: string;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  parent?: number;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Buckets in the order the table in docs/benchmarks.md lists them. */
export const BUCKETS = [
  "Express and middleware (helmet, CORS, body, request id)",
  "logging (pino)",
  "metrics (prom-client)",
  "JWT verify (jsonwebtoken)",
  "session check (auth middleware)",
  "grafserv: parse, validate, plan",
  "execution (grafast, @dataplan/pg)",
  "pg protocol (pg, pg-protocol, pg-pool)",
  "JSON output",
  "node core (http, net, timers)",
  "garbage collection",
] as const;
export type Bucket = (typeof BUCKETS)[number];

// Leaf-first rules: the first rule to match a frame decides the sample.
function classify(frame: CallFrame): Bucket | null {
  const { url, functionName } = frame;
  if (functionName === "(garbage collector)") return "garbage collection";
  if (functionName === "stringify" && url === "") return "JSON output"; // JSON.stringify (native)
  if (functionName === "parse" && url === "") return null; // JSON.parse: charged to its caller
  if (!url) return null;
  if (/node_modules\/(pino|sonic-boom|pino-std-serializers|fast-redact|thread-stream)\//.test(url) || url.endsWith("/core/logger.ts")) return "logging (pino)";
  if (/node_modules\/prom-client\//.test(url) || url.endsWith("/server/metrics.ts")) return "metrics (prom-client)";
  if (/node_modules\/(jsonwebtoken|jws|jwa|safe-buffer|ecdsa-sig-formatter|semver|lodash\.\w+)\//.test(url)) return "JWT verify (jsonwebtoken)";
  if (url.endsWith("/server/auth.ts") || url.endsWith("/server/request-transaction.ts")) return "session check (auth middleware)";
  if (/node_modules\/(pg|pg-protocol|pg-pool|pg-types|pg-connection-string|postgres-array|postgres-date|postgres-interval|postgres-bytea|pgpass)\//.test(url)) return "pg protocol (pg, pg-protocol, pg-pool)";
  if (/node_modules\/grafast\/dist\/(engine\/OutputPlan|prepare)\.js/.test(url) || /node_modules\/grafserv\/dist\/.*(json|stringify)/i.test(url)) return "JSON output";
  if (/node_modules\/grafast\/dist\/engine\/(OperationPlan|LayerPlan|lib\/|planHelpers|lock|withGlobalLayerPlan)/.test(url) || /node_modules\/grafast\/dist\/(establishOperationPlan|operationPlan-input|planner|utils)\.js/.test(url)) return "grafserv: parse, validate, plan";
  if (/node_modules\/(graphql|grafserv|@graphile\/lru|graphile-config)\//.test(url) || url.endsWith("/server/graphql-limits.ts")) return "grafserv: parse, validate, plan";
  if (/node_modules\/(grafast|@dataplan|pg-sql2|graphile-build|graphile-build-pg|postgraphile|tamedevil)\//.test(url) || /\/server\/(plugins|stripe)\//.test(url) || url.endsWith("/server/preset.ts") || url.endsWith("/server/errors.ts")) return "execution (grafast, @dataplan/pg)";
  if (/node_modules\/(express|router|body-parser|raw-body|iconv-lite|type-is|mime-types|mime-db|content-type|on-finished|finalhandler|helmet|cors|vary|accepts|negotiator|send|etag|fresh|statuses|http-errors|depd|qs|parseurl|cookie|path-to-regexp|debug|media-typer|encodeurl|escape-html|range-parser|content-disposition|proxy-addr|forwarded|ipaddr\.js|merge-descriptors|setprototypeof)\//.test(url)) return "Express and middleware (helmet, CORS, body, request id)";
  if (/\/server\/(app|http-operations|health)\.ts$/.test(url)) return "Express and middleware (helmet, CORS, body, request id)";
  return null;
}

export interface CpuBreakdown {
  /** CPU time in the profile (idle excluded), ms. */
  busyMs: number;
  /** Wall time the profile covers, ms. */
  wallMs: number;
  byBucket: Map<Bucket, number>;
}

export function summariseProfile(file: string, from?: number, to?: number): CpuBreakdown {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile & { startTime: number; endTime: number };
  const byId = new Map<number, ProfileNode>();
  for (const node of profile.nodes) byId.set(node.id, node);
  for (const node of profile.nodes) for (const child of node.children ?? []) byId.get(child)!.parent = node.id;
  const decided = new Map<number, Bucket | "idle">();
  const bucketOf = (id: number): Bucket | "idle" => {
    const known = decided.get(id);
    if (known) return known;
    let result: Bucket | "idle" = "node core (http, net, timers)";
    const leaf = byId.get(id)!;
    if (leaf.callFrame.functionName === "(idle)" || leaf.callFrame.functionName === "(program)") result = "idle";
    else {
      for (let n: ProfileNode | undefined = leaf; n; n = n.parent === undefined ? undefined : byId.get(n.parent)) {
        const b = classify(n.callFrame);
        if (b) {
          result = b;
          break;
        }
      }
    }
    decided.set(id, result);
    return result;
  };
  const byBucket = new Map<Bucket, number>(BUCKETS.map((b) => [b, 0]));
  let busy = 0;
  let t = profile.startTime;
  let first = Infinity;
  let last = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i];
    if ((from !== undefined && t < from) || (to !== undefined && t > to)) continue;
    first = Math.min(first, t);
    last = Math.max(last, t);
    const delta = profile.timeDeltas[i + 1] ?? 0; // the time until the next sample belongs to this one
    const b = bucketOf(profile.samples[i]);
    if (b === "idle") continue;
    busy += delta;
    byBucket.set(b, byBucket.get(b)! + delta);
  }
  for (const [k, v] of byBucket) byBucket.set(k, v / 1000);
  return { busyMs: busy / 1000, wallMs: (last - first) / 1000, byBucket };
}

/**
 * Prints the breakdown per request. The profile's samples give the shares; the CPU time per
 * request comes from process.cpuUsage() of the server (a profile on a busy machine also counts
 * time the process waited for a core while it was running JavaScript).
 */
export function printBreakdown(title: string, breakdown: CpuBreakdown, requests: number, cpuMicros: number): void {
  const perRequest = cpuMicros / requests;
  console.log(`\n${title}`);
  console.log(`  server CPU ${(cpuMicros / 1e6).toFixed(1)} s for ${requests.toLocaleString("en-US")} requests: ${perRequest.toFixed(0)} µs of CPU per request (process.cpuUsage, unprofiled run); shares from ${(breakdown.busyMs / 1000).toFixed(1)} s of profile samples (a second run)`);
  console.log(`  ${"".padEnd(58)} ${"µs/req".padStart(8)} ${"share".padStart(7)}`);
  for (const bucket of BUCKETS) {
    const share = breakdown.byBucket.get(bucket)! / breakdown.busyMs;
    console.log(`  ${bucket.padEnd(58)} ${(share * perRequest).toFixed(0).padStart(8)} ${(share * 100).toFixed(1).padStart(6)}%`);
  }
}

/**
 * The same breakdown for several servers under the same load, side by side (µs of CPU per
 * request by part), with the difference between the first two: where the first spends what the
 * second does not.
 */
export function printBreakdowns(title: string, servers: { label: string; breakdown: CpuBreakdown; requests: number; cpuMicros: number }[]): void {
  console.log(`\n${title}`);
  const perRequest = servers.map((s) => s.cpuMicros / s.requests);
  const head = servers.map((s) => s.label.slice(0, 12).padStart(12)).join(" ");
  console.log(`  ${"µs of server CPU per request".padEnd(58)} ${head} ${servers.length > 1 ? "difference".padStart(11) : ""}`);
  const row = (label: string, values: number[]) =>
    console.log(`  ${label.padEnd(58)} ${values.map((v) => v.toFixed(0).padStart(12)).join(" ")} ${values.length > 1 ? (values[0] - values[1]).toFixed(0).padStart(11) : ""}`);
  for (const bucket of BUCKETS) row(bucket, servers.map((s, i) => (s.breakdown.byBucket.get(bucket)! / s.breakdown.busyMs) * perRequest[i]));
  row("total (process.cpuUsage)", perRequest);
}

/** Where a frame's code lives: the npm package, or the project file, or V8/node itself. */
function ownerOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith("(") ? functionName : "(native)";
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg) return pkg[1];
  if (url.startsWith("node:")) return url;
  const own = /\/((?:server|core|db|bench)\/.+)$/.exec(url);
  return own ? own[1] : url.replace(/^file:\/\//, "");
}

/** Self time (ms, idle excluded) by the package or file whose code was running, and by function. */
export function selfTime(file: string): { byOwner: Map<string, number>; byFunction: Map<string, number>; busyMs: number } {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const node of profile.nodes) byId.set(node.id, node);
  const byOwner = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let busy = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const { functionName, url, lineNumber } = byId.get(profile.samples[i])!.callFrame as CallFrame & { lineNumber: number };
    if (functionName === "(idle)" || functionName === "(program)") continue;
    const delta = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    busy += delta;
    const owner = ownerOf(url, functionName);
    byOwner.set(owner, (byOwner.get(owner) ?? 0) + delta);
    const fn = `${functionName || "(anonymous)"} ${owner}${url ? `:${lineNumber + 1}` : ""}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + delta);
  }
  return { byOwner, byFunction, busyMs: busy };
}

/**
 * Where the first server's self time per request exceeds the second's, by package (or project
 * file) and by function, largest first: the profile's own answer to "what does tenantbase run
 * that PostGraphile does not". Each row is µs of CPU per request (shares of the profile scaled by
 * process.cpuUsage per request).
 */
export function printSelfTimeDifferences(
  title: string,
  [a, b]: { label: string; file: string; requests: number; cpuMicros: number }[],
  rows = 15,
): void {
  const [sa, sb] = [selfTime(a.file), selfTime(b.file)];
  const scale = (s: typeof sa, x: typeof a) => (ms: number) => (ms / s.busyMs) * (x.cpuMicros / x.requests);
  const [fa, fb] = [scale(sa, a), scale(sb, b)];
  for (const kind of ["byOwner", "byFunction"] as const) {
    const keys = new Set([...sa[kind].keys(), ...sb[kind].keys()]);
    const diffs = [...keys]
      .map((key) => ({ key, a: fa(sa[kind].get(key) ?? 0), b: fb(sb[kind].get(key) ?? 0) }))
      .sort((x, y) => y.a - y.b - (x.a - x.b));
    console.log(`\n${title}, by ${kind === "byOwner" ? "package or file" : "function"} (self time, µs per request)`);
    console.log(`  ${"".padEnd(72)} ${a.label.slice(0, 10).padStart(10)} ${b.label.slice(0, 10).padStart(10)} ${"more".padStart(7)}`);
    for (const d of diffs.slice(0, rows)) {
      console.log(`  ${d.key.slice(0, 72).padEnd(72)} ${d.a.toFixed(1).padStart(10)} ${d.b.toFixed(1).padStart(10)} ${(d.a - d.b).toFixed(1).padStart(7)}`);
    }
    const less = diffs.filter((d) => d.a < d.b).reduce((sum, d) => sum + d.b - d.a, 0);
    const more = diffs.filter((d) => d.a > d.b).reduce((sum, d) => sum + d.a - d.b, 0);
    console.log(`  (${a.label} runs ${more.toFixed(0)} µs more in the rows where it spends more, ${less.toFixed(0)} µs less where it spends less)`);
  }
}
