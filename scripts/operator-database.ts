// The database an operator command (credits:grant, db:seed) works on: the same choice as
// `npm start` (DATABASE_URL + AUTH_DATABASE_URL, else ROOT_DATABASE_URL, else the embedded
// PostgreSQL under DATA_DIR), migrated the same way. With the embedded database, a running
// `npm start` (or db:watch) holds the cluster: connectDatabase finds it through the data
// directory (db/embedded.ts) and connects to it instead of starting a second one.

import type { Config } from "../core/config.ts";
import { prepareDatabase, type Database } from "../db/database.ts";

export function openOperatorDatabase(config: Config, log: (line: string) => void): Promise<Database> {
  return prepareDatabase(config, log);
}
