// graphile-migrate action (`beforeAllMigrations` of `npm run db:commit`): installs
// graphile-worker's schema into the database graphile-migrate is migrating (GM_DBURL), so
// migrations that queue jobs or touch the queue also run on the shadow database, as they do
// on a real one (db/migrate.ts installs the worker schema first there too).

import { runMigrations } from "graphile-worker";
import { migrateActionUrl } from "../core/config.ts";

const url = migrateActionUrl();
if (!url) {
  console.error("GM_DBURL is not set: run this through graphile-migrate");
  process.exit(1);
}
await runMigrations({ connectionString: url });
