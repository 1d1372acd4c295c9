// A throwaway PostgreSQL cluster for tests and scripts: TEST_ROOT_DATABASE_URL, else ROOT_DATABASE_URL, else an
// embedded PostgreSQL 15 in a temporary folder that lives only for this run.

import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { startEmbeddedPostgres } from "./embedded.ts";
import { freePort } from "./ports.ts";
import { scratchRootUrl } from "../core/config.ts";

export interface TestCluster {
  rootUrl: string;
  kind: "configured" | "embedded";
  stop(): Promise<void>;
}


export async function startTestCluster(): Promise<TestCluster> {
  const configured = scratchRootUrl();
  if (configured) return { rootUrl: configured, kind: "configured", stop: async () => {} };

  const dir = mkdtempSync(path.join(os.tmpdir(), "tenantbase-test-"));
  // Under root, Postgres runs as the `postgres` system user, which must be able to enter it.
  chmodSync(dir, 0o755);
  const cluster = await startEmbeddedPostgres({
    databaseDir: path.join(dir, "pg"),
    port: await freePort(),
    password: randomBytes(16).toString("hex"),
    settings: {
      // Test data is thrown away: durability only costs time here.
      fsync: "off",
      synchronous_commit: "off",
      full_page_writes: "off",
      max_connections: "300",
      shared_preload_libraries: "pg_stat_statements",
      // Every test file's database adds its own entries; at the default 5,000 a busy run evicted
      // the slow-query test's probe between running it and reading it.
      "pg_stat_statements.max": "20000",
    },
  });
  return {
    rootUrl: cluster.rootUrl,
    kind: "embedded",
    async stop() {
      await cluster.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
