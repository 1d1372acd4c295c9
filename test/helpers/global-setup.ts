// Once per `npm test`: a cluster, the roles, and a template database with every migration and
// policy applied. Test files clone it (CREATE DATABASE … TEMPLATE), which takes well under a
// second, instead of migrating their own.

import pg from "pg";
import { randomBytes } from "node:crypto";
import { startTestCluster } from "../../db/scratch-cluster.ts";
import { ensureRoles, grantConnect, ROLES } from "../../db/roles.ts";
import { migrateDatabase } from "../../db/migrate.ts";
import { withCredentials } from "../../db/urls.ts";

export default async function globalSetup() {
  const cluster = await startTestCluster();
  const ownerPassword = randomBytes(16).toString("hex");
  const authenticatorPassword = randomBytes(16).toString("hex");
  const existing = process.env.TB_TEST_OWNER_PASSWORD;
  // Reuse passwords within one run (watch mode calls this again).
  const passwords = existing
    ? { ownerPassword: existing, authenticatorPassword: process.env.TB_TEST_AUTHENTICATOR_PASSWORD! }
    : { ownerPassword, authenticatorPassword };
  await ensureRoles(cluster.rootUrl, passwords);

  const template = `tb_template_${process.pid}_${randomBytes(3).toString("hex")}`;
  const root = new pg.Client({ connectionString: cluster.rootUrl });
  await root.connect();
  try {
    await root.query(`create database ${template} owner ${ROLES.owner} template template0 encoding 'UTF8'`);
    await grantConnect(root, template);
    await migrateDatabase({
      ownerUrl: withCredentials(cluster.rootUrl, ROLES.owner, passwords.ownerPassword, template),
      rootUrl: cluster.rootUrl,
      includeCurrent: true,
    });
    // No connection may stay open to a template, or cloning it fails (55006).
    await root.query(`alter database ${template} with is_template true allow_connections false`);
  } finally {
    await root.end();
  }

  process.env.TB_TEST_ROOT_URL = cluster.rootUrl;
  process.env.TB_TEST_TEMPLATE = template;
  process.env.TB_TEST_OWNER_PASSWORD = passwords.ownerPassword;
  process.env.TB_TEST_AUTHENTICATOR_PASSWORD = passwords.authenticatorPassword;
  process.env.TB_TEST_CLUSTER = cluster.kind;
  (globalThis as any).__tenantbaseCluster = cluster;
  // Second CI run: the API suite through PgBouncer in transaction mode (test/helpers/pgbouncer.ts).
  if (process.env.TEST_PGBOUNCER === "1" && !process.env.TB_TEST_POOLER_PORT) {
    const { startPgBouncer } = await import("./pgbouncer.ts");
    const bouncer = await startPgBouncer({ rootUrl: cluster.rootUrl, ...passwords });
    process.env.TB_TEST_POOLER_PORT = String(bouncer.port);
    // What PG_PREPARED_STATEMENTS=false does for `npm start` (core/graphile-env.ts).
    process.env.DATAPLAN_PG_PREPARED_STATEMENT_CACHE_SIZE = "0";
    (globalThis as any).__tenantbasePgBouncer = bouncer;
  }
}
