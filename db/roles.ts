// Cluster-wide roles and the application database, created idempotently with a superuser
// connection. Nothing here is a migration: roles belong to the cluster, not to one database.
//
//   app_owner          LOGIN; owns the database and every object in it; runs migrations, jobs
//   app_authenticator  LOGIN NOINHERIT; what PostGraphile connects as; may only SET ROLE to
//                      app_anonymous or app_user
//   app_anonymous      NOLOGIN; a caller without a token
//   app_user           NOLOGIN; a signed-in caller
// None is superuser, none has BYPASSRLS, CREATEROLE or CREATEDB.

import pg from "pg";
import { STARTUP_LOCKS, withAdvisoryLock, type StartupLockOptions } from "./startup-lock.ts";

export const ROLES = {
  owner: "app_owner",
  authenticator: "app_authenticator",
  anonymous: "app_anonymous",
  user: "app_user",
} as const;

export interface RolePasswords {
  ownerPassword: string | null;
  authenticatorPassword: string | null;
}

async function ensureRole(client: pg.Client, name: string, attributes: string, password: string | null) {
  const { rowCount } = await client.query("select 1 from pg_roles where rolname = $1", [name]);
  const verb = rowCount ? "alter" : "create";
  await client.query(`${verb} role ${name} with ${attributes}`);
  if (password !== null) {
    // Parameters cannot be bound in utility statements; quote the literal properly instead.
    await client.query(`alter role ${name} with password ${client.escapeLiteral(password)}`);
  }
}

export async function ensureRoles(rootUrl: string, passwords: RolePasswords, lock: StartupLockOptions = {}): Promise<void> {
  const client = new pg.Client({ connectionString: rootUrl });
  await client.connect();
  try {
    // Servers and workers starting at once must not race on CREATE ROLE (or on ALTER ROLE:
    // "tuple concurrently updated"): one at a time, bounded wait (db/startup-lock.ts).
    await withAdvisoryLock(client, STARTUP_LOCKS.cluster, "creating the roles", lock, async () => {
      const safe = "nosuperuser nocreatedb nocreaterole nobypassrls noreplication";
      await ensureRole(client, ROLES.owner, `login ${safe} inherit`, passwords.ownerPassword);
      await ensureRole(client, ROLES.authenticator, `login ${safe} noinherit`, passwords.authenticatorPassword);
      await ensureRole(client, ROLES.anonymous, `nologin ${safe}`, null);
      await ensureRole(client, ROLES.user, `nologin ${safe}`, null);
      await client.query(`grant ${ROLES.anonymous}, ${ROLES.user} to ${ROLES.authenticator}`);
    });
  } finally {
    await client.end();
  }
}

/** Creates the database owned by app_owner unless it exists; never drops anything. */
export async function ensureDatabase(rootUrl: string, databaseName: string, lock: StartupLockOptions = {}): Promise<boolean> {
  const client = new pg.Client({ connectionString: rootUrl });
  await client.connect();
  try {
    // Checked and created under the same lock as the roles, so two processes starting at once
    // do not both see "missing" and race on CREATE DATABASE (one would fail with 42P04).
    return await withAdvisoryLock(client, STARTUP_LOCKS.cluster, `creating database ${databaseName}`, lock, async () => {
      const { rowCount } = await client.query("select 1 from pg_database where datname = $1", [databaseName]);
      if (rowCount) return false;
      try {
        await client.query(`create database ${client.escapeIdentifier(databaseName)} owner ${ROLES.owner} encoding 'UTF8' template template0`);
      } catch (error) {
        // Created meanwhile by something that does not take our lock (another tool): fine.
        if ((error as { code?: string }).code === "42P04") return false;
        throw error;
      }
      await grantConnect(client, databaseName);
      return true;
    });
  } finally {
    await client.end();
  }
}

export async function grantConnect(client: pg.Client, databaseName: string): Promise<void> {
  const db = client.escapeIdentifier(databaseName);
  await client.query(`revoke all on database ${db} from public`);
  await client.query(`grant connect, temporary on database ${db} to ${ROLES.owner}, ${ROLES.authenticator}`);
}

/** Drops and recreates the database (db:reset). */
export async function recreateDatabase(rootUrl: string, databaseName: string): Promise<void> {
  const client = new pg.Client({ connectionString: rootUrl });
  await client.connect();
  try {
    await client.query(`drop database if exists ${client.escapeIdentifier(databaseName)} with (force)`);
  } finally {
    await client.end();
  }
  await ensureDatabase(rootUrl, databaseName);
}
