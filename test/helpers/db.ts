// A test file's own database, cloned from the migrated template, plus ways to act in SQL as a
// given role and user: exactly what PostGraphile does per request (transaction-local role and
// claims on an app_authenticator connection).

import pg from "pg";
import { randomBytes } from "node:crypto";
import { grantConnect, ROLES } from "../../db/roles.ts";
import { withCredentials, withDatabase } from "../../db/urls.ts";
import { throughPooler } from "./pgbouncer.ts";
import { withSettings, type TransactionSettings } from "../../db/transaction.ts";

export interface Actor {
  /** null: app_anonymous */
  userId: string | null;
  sessionId?: string | null;
}

export interface TestDatabase {
  name: string;
  rootUrl: string;
  ownerUrl: string;
  authUrl: string;
  /** app_owner straight to PostgreSQL even when the run goes through PgBouncer (LISTEN needs a session). */
  directOwnerUrl: string;
  /** app_owner connections (migrations, jobs, SECURITY DEFINER functions run as this). */
  owner: pg.Pool;
  /** app_authenticator connections, used by `as`. */
  auth: pg.Pool;
  /** Superuser connection to this database. */
  root: pg.Pool;
  /** Runs fn in a transaction as the actor (app_user or app_anonymous), then commits. */
  as<T>(actor: Actor | null, fn: (client: pg.PoolClient) => Promise<T>): Promise<T>;
  /** One query as the actor, in its own transaction. */
  queryAs<R extends pg.QueryResultRow = any>(actor: Actor | null, sql: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
  drop(): Promise<void>;
}

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the tests with jest (test/helpers/global-setup.ts)`);
  return value;
}

/** The transaction-local settings of a request made by this actor (as server/auth.ts sets them). */
export function actorSettings(actor: Actor | null): TransactionSettings {
  return {
    role: actor?.userId ? ROLES.user : ROLES.anonymous,
    "jwt.claims.user_id": actor?.userId ?? "",
    "jwt.claims.session_id": actor?.sessionId ?? "",
  };
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const rootUrl = env("TB_TEST_ROOT_URL");
  const template = env("TB_TEST_TEMPLATE");
  const name = `${template}_f${randomBytes(4).toString("hex")}`;

  const admin = new pg.Client({ connectionString: rootUrl });
  await admin.connect();
  try {
    await admin.query(`create database ${name} template ${template} owner ${ROLES.owner}`);
    await grantConnect(admin, name);
  } finally {
    await admin.end();
  }

  // Through PgBouncer when the run has one (TEST_PGBOUNCER=1), else straight to PostgreSQL.
  const directOwnerUrl = withCredentials(rootUrl, ROLES.owner, env("TB_TEST_OWNER_PASSWORD"), name);
  const ownerUrl = throughPooler(directOwnerUrl);
  const authUrl = throughPooler(withCredentials(rootUrl, ROLES.authenticator, env("TB_TEST_AUTHENTICATOR_PASSWORD"), name));
  const owner = new pg.Pool({ connectionString: ownerUrl, max: 5 });
  const auth = new pg.Pool({ connectionString: authUrl, max: 30 });
  const root = new pg.Pool({ connectionString: withDatabase(rootUrl, name), max: 2 });
  for (const pool of [owner, auth, root]) pool.on("error", () => {});

  function as<T>(actor: Actor | null, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return withSettings(auth, actorSettings(actor), fn);
  }

  return {
    name,
    rootUrl: withDatabase(rootUrl, name),
    ownerUrl,
    authUrl,
    directOwnerUrl,
    owner,
    auth,
    root,
    as,
    queryAs: (actor, sql, values) => as(actor, (client) => client.query(sql, values)),
    async drop() {
      await Promise.all([owner.end(), auth.end(), root.end()]);
      const admin = new pg.Client({ connectionString: rootUrl });
      await admin.connect();
      try {
        await admin.query(`drop database if exists ${name} with (force)`);
      } finally {
        await admin.end();
      }
    },
  };
}
