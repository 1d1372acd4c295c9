// The database an operator command (credits:grant, db:seed) works on: the same choice as
// `npm start` (DATABASE_URL + AUTH_DATABASE_URL, else ROOT_DATABASE_URL, else the embedded
// PostgreSQL under DATA_DIR), migrated the same way. With the embedded database, a running
// `npm start` holds the cluster: when the owner role already answers on its port, that cluster
// is used as it is instead of starting a second one on the same data directory.

import pg from "pg";
import type { Config } from "../core/config.ts";
import { prepareDatabase, type Database } from "../db/database.ts";
import { loadLocalSecrets } from "../db/secrets.ts";
import { ROLES } from "../db/roles.ts";

async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.query("select 1");
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

export async function openOperatorDatabase(config: Config, log: (line: string) => void): Promise<Database> {
  if (!(config.databaseUrl && config.authDatabaseUrl) && !config.rootDatabaseUrl) {
    const secrets = loadLocalSecrets(config.dataDir);
    const at = `127.0.0.1:${config.embeddedPostgresPort}/${encodeURIComponent(config.databaseName)}`;
    const ownerUrl = `postgres://${ROLES.owner}:${encodeURIComponent(config.ownerPassword ?? secrets.ownerPassword)}@${at}`;
    if (await answers(ownerUrl)) {
      log(`using the embedded PostgreSQL already running on 127.0.0.1:${config.embeddedPostgresPort}`);
      const authPassword = config.authenticatorPassword ?? secrets.authenticatorPassword;
      return {
        ownerUrl,
        authUrl: `postgres://${ROLES.authenticator}:${encodeURIComponent(authPassword)}@${at}`,
        rootUrl: null,
        mode: "embedded",
        stop: async () => {},
      };
    }
  }
  return prepareDatabase(config, log);
}
