// Database steps on their own:
//   npm run db:setup    create roles and database if missing (ROOT_DATABASE_URL or embedded)
//   npm run db:migrate  setup, then migrations, then db/functions and db/policies
//   npm run db:watch    migrate (with db/migrations/current/), then re-apply db/functions and
//                       db/policies whenever a file in them is saved (development)
//   npm run db:reset    drop and recreate the database, then migrate (asks nothing: dev only)
//   npm run db:commit   commit db/migrations/current/*.sql as the next migration (graphile-migrate,
//                       checked against a shadow database)
// Connection settings are the same as `npm start` (see docs/configuration.md, "Which PostgreSQL is
// used"). With the embedded PostgreSQL, these commands and `npm start` share the one cluster of
// DATA_DIR: whichever runs first starts it, the others connect to it (db/embedded.ts).

import { commit } from "graphile-migrate";
import { loadConfig, ConfigError } from "../core/config.ts";
import { connectDatabase } from "./database.ts";
import { closeMigratePools, migrateDatabase, migrateSettings, removeBlankCurrentMigrations } from "./migrate.ts";
import { applySchema } from "./apply-schema.ts";
import { notifySchemaChanged, watchSchema } from "./watch-schema.ts";
import { recreateDatabase, ensureDatabase } from "./roles.ts";
import { withCredentials } from "./urls.ts";

const log = (line: string) => console.log(`[db] ${line}`);

async function main(command: string | undefined) {
  const config = loadConfig();
  if (command === "reset" && config.isProduction) {
    throw new ConfigError("db:reset refuses to run with NODE_ENV=production");
  }
  const database = await connectDatabase(config, log);
  try {
    switch (command) {
      case "setup":
        log(`roles and database ${config.databaseName} are ready`);
        break;
      case "migrate":
        await migrateDatabase({ ownerUrl: database.ownerUrl, rootUrl: database.rootUrl, log });
        await applySchema(database.ownerUrl, { force: true, log });
        await notifySchemaChanged(database.ownerUrl);
        log("migrations, functions and policies applied");
        break;
      case "watch":
        await migrateDatabase({ ownerUrl: database.ownerUrl, rootUrl: database.rootUrl, log, includeCurrent: true });
        await notifySchemaChanged(database.ownerUrl);
        await watchSchema(database.ownerUrl, log);
        return;
      case "reset":
        if (!database.rootUrl) throw new ConfigError("db:reset needs ROOT_DATABASE_URL (or the embedded database)");
        await recreateDatabase(database.rootUrl, config.databaseName);
        await migrateDatabase({ ownerUrl: database.ownerUrl, rootUrl: database.rootUrl, log });
        log(`database ${config.databaseName} recreated and migrated`);
        break;
      case "commit": {
        if (!database.rootUrl) throw new ConfigError("db:commit needs ROOT_DATABASE_URL (or the embedded database)");
        const shadowName = `${config.databaseName}_shadow`;
        await ensureDatabase(database.rootUrl, shadowName);
        const ownerUrl = new URL(database.ownerUrl);
        const settings = {
          ...migrateSettings({ ownerUrl: database.ownerUrl, rootUrl: database.rootUrl, log }),
          beforeAllMigrations: [{ _: "command" as const, command: `"${process.execPath}" db/install-worker-schema.ts` }],
          shadowConnectionString: withCredentials(
            database.rootUrl,
            decodeURIComponent(ownerUrl.username),
            decodeURIComponent(ownerUrl.password),
            shadowName,
          ),
        };
        await commit(settings, process.argv[3] ?? null);
        // graphile-migrate leaves its blank migration as current/1-current.sql: current/ is left
        // empty instead, ready for the next NNN-<domain>-<what>.sql.
        removeBlankCurrentMigrations();
        await notifySchemaChanged(database.ownerUrl);
        log("committed db/migrations/current/ as the next migration (see db/migrations/committed/)");
        break;
      }
      default:
        throw new ConfigError("usage: node db/cli.ts setup|migrate|watch|reset|commit [message]");
    }
  } finally {
    await closeMigratePools();
    await database.stop();
  }
}

main(process.argv[2]).catch((error) => {
  console.error(`[db] ${error instanceof ConfigError ? "" : "failed: "}${error.message}`);
  process.exit(1);
});
