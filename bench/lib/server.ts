// The API server for a benchmark, in its own process (as in production: the load generator must
// not share its event loop), with NODE_ENV=production and the given pool size; `processes` > 1
// serves from that many processes (node:cluster, as WEB_CONCURRENCY does for `npm start`).

import { fork, type ChildProcess } from "node:child_process";
import path from "node:path";
import jwt from "jsonwebtoken";
import { projectRoot } from "../../core/paths.ts";
import { post } from "./http-client.ts";

export const BENCH_JWT = { secret: "bench-secret-that-is-at-least-32-characters-long", audience: "tenantbase", issuer: "tenantbase" };

export function benchToken(userId: string, sessionId: string): string {
  return jwt.sign({ role: "app_user", sub: userId, session_id: sessionId, exp: Math.floor(Date.now() / 1000) + 86400 }, BENCH_JWT.secret, {
    algorithm: "HS256",
    audience: BENCH_JWT.audience,
    issuer: BENCH_JWT.issuer,
  });
}

export interface BenchServer {
  url: string;
  /** The server's process id (the primary's, with several processes). */
  pid: number;
  /** CPU time (user + system, µs) the single server process used while `during` ran. */
  cpu<T>(during: () => Promise<T>): Promise<{ result: T; cpuMicros: number }>;
  /** Records a CPU profile of the (single) server process while `during` runs; also the CPU time it used (µs). */
  profile<T>(file: string, during: () => Promise<T>): Promise<{ result: T; cpuMicros: number }>;
  graphql<T = any>(query: string, variables: Record<string, unknown>, token: string): Promise<T>;
  stop(): Promise<void>;
}

/**
 * kind: "tenantbase" (the real app), "plain" (bench/lib/plain-endpoint-child.ts: a hand-written
 * node:http endpoint for the list query only) or "stock" (bench/lib/stock-postgraphile-child.ts:
 * stock PostGraphile 5 on the same schema); the last two are references, one process each.
 */
export type BenchServerKind = "tenantbase" | "plain" | "stock";
const SCRIPTS: Record<BenchServerKind, string> = {
  tenantbase: "server-child.ts",
  plain: "plain-endpoint-child.ts",
  stock: "stock-postgraphile-child.ts",
};

export async function startBenchServer(ownerUrl: string, authUrl: string, poolSize = 16, processes = 1, kind: BenchServerKind = "tenantbase"): Promise<BenchServer> {
  const child: ChildProcess = fork(path.join(projectRoot, "bench", "lib", SCRIPTS[kind]), [], {
    env: { ...process.env, NODE_ENV: "production", LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? "info", BENCH_OWNER_URL: ownerUrl, BENCH_AUTH_URL: authUrl, BENCH_POOL_SIZE: String(poolSize), BENCH_PROCESSES: String(processes) },
    // request log lines are written (as in production) but not shown: stdout to /dev/null
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once("message", (m: any) => resolve(m.port));
    child.once("exit", (code) => reject(new Error(`bench server exited with ${code}`)));
  });
  const url = `http://127.0.0.1:${port}/graphql`;
  const target = new URL(url);
  const reply = (type: string) => new Promise<any>((resolve) => {
    const on = (m: any) => {
      if (m?.type !== type) return;
      child.off("message", on);
      resolve(m);
    };
    child.on("message", on);
  });
  return {
    url,
    pid: child.pid!,
    async cpu(during) {
      if (processes !== 1) throw new Error("measure a single-process server");
      const before = reply("cpu");
      child.send({ type: "cpu" });
      const start = (await before).cpuMicros;
      const result = await during();
      const after = reply("cpu");
      child.send({ type: "cpu" });
      return { result, cpuMicros: (await after).cpuMicros - start };
    },
    async profile(file, during) {
      if (processes !== 1) throw new Error("profile a single-process server");
      const started = reply("profile-started");
      child.send({ type: "profile-start" });
      await started;
      let result: any;
      let cpuMicros = 0;
      try {
        result = await during();
      } finally {
        const stopped = reply("profile-stopped");
        child.send({ type: "profile-stop", file });
        cpuMicros = (await stopped).cpuMicros;
      }
      return { result, cpuMicros };
    },
    async graphql(query, variables, token) {
      const answer = await post(target, JSON.stringify({ query, variables }), {
        "content-type": "application/json",
        accept: "application/json",
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      });
      const body = JSON.parse(answer.body) as { data?: any; errors?: { message: string; extensions?: { code?: string } }[] };
      if (body.errors?.length) {
        const e = body.errors[0];
        throw Object.assign(new Error(`${e.extensions?.code ?? ""} ${e.message}`), { code: e.extensions?.code });
      }
      return body.data;
    },
    async stop() {
      child.kill("SIGTERM");
      await new Promise((resolve) => child.once("exit", resolve));
    },
  };
}
