// A migrated database on a throwaway cluster (db/scratch-cluster.ts), for scripts that need the
// real schema and then leave nothing behind: the schema export and some benchmarks.

import pg from "pg";
import { randomBytes } from "node:crypto";
import { startTestCluster } from "./scratch-cluster.ts";
import { ensureRoles, grantConnect, ROLES } from "./roles.ts";
import { migrateDatabase } from "./migrate.ts";
import { withCredentials } from "./urls.ts";

export interface ScratchDatabase {
  rootUrl: string;
  ownerUrl: string;
  authUrl: string;
  /** Drops the database and stops the cluster if it was started for this. */
  drop(): Promise<void>;
}

export async function createScratchDatabase(prefix: string): Promise<ScratchDatabase> {
  const cluster = await startTestCluster();
  const passwords = { ownerPassword: randomBytes(16).toString("hex"), authenticatorPassword: randomBytes(16).toString("hex") };
  const name = `${prefix}_${randomBytes(3).toString("hex")}`;
  const root = new pg.Client({ connectionString: cluster.rootUrl });
  await root.connect();
  const drop = async () => {
    // graphile-migrate's cached pools call process.exit on a broken connection for 200 ms after
    // use; let them close before the database goes away.
    await new Promise((resolve) => setTimeout(resolve, 300));
    await root.query(`drop database if exists ${name} with (force)`).catch(() => {});
    await root.end();
    await cluster.stop();
  };
  try {
    await ensureRoles(cluster.rootUrl, passwords);
    await root.query(`create database ${name} owner ${ROLES.owner}`);
    await grantConnect(root, name);
    const ownerUrl = withCredentials(cluster.rootUrl, ROLES.owner, passwords.ownerPassword, name);
    await migrateDatabase({ ownerUrl, rootUrl: cluster.rootUrl, includeCurrent: true });
    return {
      rootUrl: cluster.rootUrl,
      ownerUrl,
      authUrl: withCredentials(cluster.rootUrl, ROLES.authenticator, passwords.authenticatorPassword, name),
      drop,
    };
  } catch (error) {
    await drop();
    throw error;
  }
}
