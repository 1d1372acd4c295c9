// Drops the template and any test database a crashed file left behind, then stops the
// embedded cluster if this run started one.

import pg from "pg";
import type { TestCluster } from "../../db/scratch-cluster.ts";

export default async function globalTeardown() {
  const cluster = (globalThis as any).__tenantbaseCluster as TestCluster | undefined;
  const template = process.env.TB_TEST_TEMPLATE;
  if (cluster && template) {
    const root = new pg.Client({ connectionString: cluster.rootUrl });
    await root.connect();
    try {
      const { rows } = await root.query(
        "select datname from pg_database where datname = $1 or datname like $2",
        [template, `${template}\\_f%`],
      );
      for (const { datname } of rows) {
        await root.query(`alter database ${root.escapeIdentifier(datname)} with is_template false`);
        await root.query(`drop database ${root.escapeIdentifier(datname)} with (force)`);
      }
    } finally {
      await root.end();
    }
  }
  const bouncer = (globalThis as any).__tenantbasePgBouncer;
  if (bouncer) await (await import("./pgbouncer.ts")).stopPgBouncer(bouncer);
  await cluster?.stop();
}
