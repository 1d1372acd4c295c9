// `npm run schema:export`: builds the API from a scratch database migrated from this checkout
// (committed and current migrations, policies) and writes schema.graphql.

import "../server/graphile-env.ts";
import { writeFileSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import { randomBytes } from "node:crypto";
import { postgraphile } from "postgraphile";
import { startTestCluster } from "../db/scratch-cluster.ts";
import { ensureRoles, grantConnect, ROLES } from "../db/roles.ts";
import { migrateDatabase } from "../db/migrate.ts";
import { withCredentials } from "../db/urls.ts";
import { makePreset } from "../server/preset.ts";
import { schemaToSdl } from "../server/schema-sdl.ts";
import { projectRoot } from "../server/paths.ts";

async function main() {
  const cluster = await startTestCluster();
  const passwords = { ownerPassword: randomBytes(16).toString("hex"), authenticatorPassword: randomBytes(16).toString("hex") };
  const name = `tb_schema_export_${randomBytes(3).toString("hex")}`;
  const root = new pg.Client({ connectionString: cluster.rootUrl });
  await root.connect();
  try {
    await ensureRoles(cluster.rootUrl, passwords);
    await root.query(`create database ${name} owner ${ROLES.owner}`);
    await grantConnect(root, name);
    await migrateDatabase({
      ownerUrl: withCredentials(cluster.rootUrl, ROLES.owner, passwords.ownerPassword, name),
      rootUrl: cluster.rootUrl,
      includeCurrent: true,
    });
    const authPool = new pg.Pool({
      connectionString: withCredentials(cluster.rootUrl, ROLES.authenticator, passwords.authenticatorPassword, name),
    });
    const pgl = postgraphile(makePreset({ authPool, jwt: { secret: "x".repeat(32), audience: "a", issuer: "i" } }));
    const { schema } = await pgl.getSchemaResult();
    const file = path.join(projectRoot, "schema.graphql");
    writeFileSync(file, schemaToSdl(schema));
    await pgl.release();
    await authPool.end();
    console.log(`wrote ${path.relative(process.cwd(), file)}`);
  } finally {
    await root.query(`drop database if exists ${name} with (force)`).catch(() => {});
    await root.end();
    await cluster.stop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
