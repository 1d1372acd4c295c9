// What bench:api's reference servers (plain-endpoint-child.ts, stock-postgraphile-child.ts) share:
// listen on an ephemeral port, report it to bench/lib/server.ts over IPC, and on SIGTERM drop
// every connection and the pool and exit.

import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import type pg from "pg";

export function serveReference(server: Server, pool: pg.Pool): void {
  server.keepAliveTimeout = 65_000;
  server.listen(0, "127.0.0.1", () => process.send!({ port: (server.address() as AddressInfo).port }));
  process.on("SIGTERM", () => {
    server.close();
    server.closeAllConnections();
    pool.end().finally(() => process.exit(0));
  });
}
