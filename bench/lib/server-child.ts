// Started by bench/lib/server.ts: the real app on an ephemeral port; reports the port over IPC.

import type { AddressInfo } from "node:net";
import { createApp } from "../../server/app.ts";
import { BENCH_JWT } from "./server.ts";
import { realtimeConfig } from "../../core/config.ts";

const app = await createApp({
  ownerUrl: process.env.BENCH_OWNER_URL!,
  authUrl: process.env.BENCH_AUTH_URL!,
  jwt: BENCH_JWT,
  graphiql: false,
  authPoolSize: Number(process.env.BENCH_POOL_SIZE ?? 16),
  realtime: realtimeConfig(process.env),
});
await new Promise<void>((resolve) => app.httpServer.listen(0, "127.0.0.1", resolve));
process.send!({ port: (app.httpServer.address() as AddressInfo).port });
process.on("SIGTERM", async () => {
  await app.close();
  process.exit(0);
});
