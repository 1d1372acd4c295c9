// pg_stat_statements for the slow-query report. Creating the extension needs a superuser, so it
// happens at start-up when we have one (embedded PostgreSQL, ROOT_DATABASE_URL); the server's
// owner role gets pg_read_all_stats to read other roles' statements. Whether it works is then
// checked as the owner; server/main.ts warns once, clearly, when it does not.

import pg from "pg";
import { ROLES } from "./roles.ts";
import { databaseNameOf, withDatabase } from "./urls.ts";

interface Log {
  warn(fields: object, message: string): void;
}

export async function ensureMonitoring(rootUrl: string, ownerUrl: string, logger: Log): Promise<void> {
  const client = new pg.Client({ connectionString: withDatabase(rootUrl, databaseNameOf(ownerUrl)) });
  try {
    await client.connect();
    const { rows } = await client.query(
      "select 'pg_stat_statements' = any (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ',')) as loaded",
    );
    if (!rows[0].loaded) return; // the warning in main.ts explains what to change
    await client.query("create extension if not exists pg_stat_statements");
    await client.query(`grant pg_read_all_stats to ${ROLES.owner}`);
  } catch (error) {
    logger.warn({ error: (error as Error).message }, "could not set up pg_stat_statements");
  } finally {
    await client.end().catch(() => {});
  }
}

export async function slowQueryMonitoringStatus(ownerUrl: string): Promise<{ available: boolean; reason?: string }> {
  const client = new pg.Client({ connectionString: ownerUrl });
  try {
    await client.connect();
    const { rows } = await client.query("select exists (select 1 from pg_extension where extname = 'pg_stat_statements') as installed");
    if (!rows[0].installed) return { available: false, reason: "the extension is not installed in this database" };
    await client.query("select 1 from pg_stat_statements limit 1");
    return { available: true };
  } catch (error) {
    return { available: false, reason: (error as Error).message };
  } finally {
    await client.end().catch(() => {});
  }
}
