// What bench:api's reference servers (plain-endpoint-child.ts, stock-postgraphile-child.ts) share:
// listen on an ephemeral port, report it to bench/lib/server.ts over IPC, and on SIGTERM drop
// every connection and the pool and exit; record a CPU profile on request, as server-child.ts
// does, so that bench:api can set stock PostGraphile's profile beside tenantbase's.

import { writeFileSync } from "node:fs";
import type { Server } from "node:http";
import { Session } from "node:inspector/promises";
import type { AddressInfo } from "node:net";
import type pg from "pg";

export function serveReference(server: Server, pool: pg.Pool): void {
  server.keepAliveTimeout = 65_000;
  server.listen(0, "127.0.0.1", () => process.send!({ port: (server.address() as AddressInfo).port }));
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
      process.send!({ type: "profile-stopped", cpuMicros: cpu.user + cpu.system });
    }
  });
  process.on("SIGTERM", () => {
    server.close();
    server.closeAllConnections();
    pool.end().finally(() => process.exit(0));
  });
}
