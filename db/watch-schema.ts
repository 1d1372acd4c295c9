// `npm run db:watch`: re-applies db/functions and db/policies whenever a file in them is saved,
// so a developer edits a function's one file and tries it at once. A file with an error is
// reported and nothing is applied (one transaction); the next save tries again. Resolves on
// Ctrl-C.
//
// After each apply it notifies SCHEMA_CHANGED_CHANNEL: a development server (`npm start` without
// NODE_ENV=production) listens there and rebuilds its GraphQL schema at once, so the change is
// in GraphiQL (which reloads its schema by itself) within a second. No event trigger and no
// superuser needed: PostGraphile's watch mode re-reads the catalog on any message on it.

import pg from "pg";
import { applySchema, readSchema } from "./apply-schema.ts";

/** The channel PostGraphile's watch mode listens on (graphile-build-pg's PgIntrospectionPlugin). */
export const SCHEMA_CHANGED_CHANNEL = "postgraphile_watch";

/** Tells watching servers to re-read the schema (any role may NOTIFY). Never throws. */
export async function notifySchemaChanged(ownerUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: ownerUrl });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.query("select pg_notify($1, $2)", [SCHEMA_CHANGED_CHANNEL, JSON.stringify({ type: "manual", payload: "tenantbase db:watch" })]);
  } catch {
    // a server that missed it still has the schema it had; the next save notifies again
  } finally {
    await client.end().catch(() => {});
  }
}

/** How often the SQL files are read and compared (ms). */
const POLL_MS = 150;

/**
 * Re-applies db/functions and db/policies when their text changes. The files are read and hashed
 * every POLL_MS rather than watched with fs.watch: an editor that saves by renaming a new file
 * over the old one (vim, sed -i, many IDEs) was not reported by a recursive watch on Linux, and a
 * folder created later was not watched at all. A change is applied once it has held for one poll
 * (editors write a file in several steps).
 */
export function watchSchema(ownerUrl: string, log: (line: string) => void): Promise<void> {
  let applied = readSchema().hash;
  let seen = applied;
  let busy = false;
  const poll = async () => {
    if (busy) return;
    busy = true;
    try {
      let hash: string;
      try {
        hash = readSchema().hash;
      } catch {
        return; // a file or folder renamed mid-read: the next poll sees it whole
      }
      if (hash !== seen) {
        seen = hash; // changed since the last poll: wait until it holds still
        return;
      }
      if (hash === applied) return;
      applied = hash;
      try {
        if (await applySchema(ownerUrl, { log })) {
          await notifySchemaChanged(ownerUrl);
          log("re-applied; watching for changes (Ctrl-C stops)");
        }
      } catch (error) {
        log(`not applied: ${(error as Error).message}`);
      }
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void poll(), POLL_MS);
  log("watching db/functions and db/policies (Ctrl-C stops)");
  return new Promise((resolve) => {
    const stop = () => {
      clearInterval(timer);
      const wait = () => (busy ? setTimeout(wait, 20) : resolve());
      wait();
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}
