// Started by bench/lib/server.ts: the real app on an ephemeral port; reports the port over IPC.
// BENCH_PROCESSES=N > 1: N server processes on one port through node:cluster, as `npm start`
// does with WEB_CONCURRENCY=N. On {type: "profile-start"} / {type: "profile-stop", file} a
// process records a V8 CPU profile (the profiler `node --cpu-prof` uses, started over the
// inspector so that it covers the measured load only, not start-up).

import cluster from "node:cluster";
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import type { AddressInfo } from "node:net";
import { createApp } from "../../server/app.ts";
import { BENCH_JWT } from "./server.ts";
import { realtimeConfig } from "../../core/config.ts";

const processes = Number(process.env.BENCH_PROCESSES ?? 1);

if (cluster.isPrimary && processes > 1) {
  // as server/cluster.ts: each process accepts from the shared socket
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  const ports = await Promise.all(
    Array.from({ length: processes }, () => {
      const worker = cluster.fork();
      return new Promise<number>((resolve, reject) => {
        worker.once("message", (m: any) => resolve(m.port));
        worker.once("exit", (code) => reject(new Error(`bench server process exited with ${code}`)));
      });
    }),
  );
  process.send!({ port: ports[0] });
  process.on("SIGTERM", async () => {
    await Promise.all(Object.values(cluster.workers ?? {}).map((w) => new Promise((resolve) => { w!.once("exit", resolve); w!.process.kill("SIGTERM"); })));
    process.exit(0);
  });
} else {
  const app = await createApp({
    ownerUrl: process.env.BENCH_OWNER_URL!,
    authUrl: process.env.BENCH_AUTH_URL!,
    jwt: BENCH_JWT,
    graphiql: false,
    authPoolSize: Number(process.env.BENCH_POOL_SIZE ?? 16),
    realtime: realtimeConfig(process.env),
  });
  // listen(0) in cluster workers: every process shares the one port the primary picked
  await new Promise<void>((resolve) => app.httpServer.listen(0, "127.0.0.1", resolve));
  const session = new Session();
  session.connect();
  let cpuAtStart = process.cpuUsage();
  process.on("message", async (m: any) => {
    if (m?.type === "cpu") {
      const cpu = process.cpuUsage();
      process.send!({ type: "cpu", cpuMicros: cpu.user + cpu.system });
    } else if (m?.type === "profile-start") {
      cpuAtStart = process.cpuUsage();
      await session.post("Profiler.enable");
      await session.post("Profiler.setSamplingInterval", { interval: 1000 });
      await session.post("Profiler.start");
      process.send!({ type: "profile-started" });
    } else if (m?.type === "profile-stop") {
      const { profile } = await session.post("Profiler.stop");
      const cpu = process.cpuUsage(cpuAtStart);
      writeFileSync(m.file, JSON.stringify(profile));
      // CPU time really used (user + system), whatever else the machine was running
      process.send!({ type: "profile-stopped", cpuMicros: cpu.user + cpu.system });
    }
  });
  process.send!({ port: (app.httpServer.address() as AddressInfo).port });
  process.on("SIGTERM", async () => {
    await app.close();
    process.exit(0);
  });
}
