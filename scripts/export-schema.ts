// `npm run schema:export`: builds the API from a scratch database migrated from this checkout
// (committed and current migrations, policies) and writes schema.graphql.

import "../core/graphile-env.ts";
import { writeFileSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import { postgraphile } from "postgraphile";
import { createScratchDatabase } from "../db/scratch-database.ts";
import { makePreset } from "../server/preset.ts";
import { DEFAULT_LIMITS } from "../server/graphql-limits.ts";
import { schemaToSdl } from "../server/schema-sdl.ts";
import { projectRoot } from "../core/paths.ts";

async function main() {
  const database = await createScratchDatabase("tb_schema_export");
  try {
    const authPool = new pg.Pool({ connectionString: database.authUrl });
    const pgl = postgraphile(makePreset({ authPool, jwt: { secret: "x".repeat(32), audience: "a", issuer: "i" }, limits: DEFAULT_LIMITS }));
    const { schema } = await pgl.getSchemaResult();
    const file = path.join(projectRoot, "schema.graphql");
    writeFileSync(file, schemaToSdl(schema));
    await pgl.release();
    await authPool.end();
    console.log(`wrote ${path.relative(process.cwd(), file)}`);
  } finally {
    await database.drop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
