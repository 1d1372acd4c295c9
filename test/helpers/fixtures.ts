// Users and organizations made the quick way (as the owner, no bcrypt), for tests whose subject
// is something else. Tests of registration itself go through app_public.register.

import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { projectRoot } from "../../core/paths.ts";
import type { TestDatabase, Actor } from "./db.ts";

export interface TestUser extends Actor {
  userId: string;
  sessionId: string;
  email: string;
}

export async function createUser(db: TestDatabase, name = "Test User"): Promise<TestUser> {
  const email = `user-${randomBytes(5).toString("hex")}@example.com`;
  const { rows } = await db.owner.query(
    // verified: fixture users stand for people who proved their address (tests of verification
    // itself register through app_public.register)
    `with u as (insert into app_public.users (email, name, email_verified_at) values ($1, $2, now()) returning id)
     insert into app_private.sessions (user_id, expires_at) select id, now() + interval '1 day' from u
     returning user_id, id as session_id`,
    [email, name],
  );
  return { userId: rows[0].user_id, sessionId: rows[0].session_id, email };
}

export interface TestOrganization {
  id: string;
  slug: string;
  owner: TestUser;
}

export async function createOrganization(db: TestDatabase, owner: TestUser, name = "Test Org"): Promise<TestOrganization> {
  const { rows } = await db.queryAs(owner, "select id, slug from app_public.create_organization($1)", [name]);
  return { id: rows[0].id, slug: rows[0].slug, owner };
}

export async function addMember(
  db: TestDatabase,
  organizationId: string,
  user: TestUser,
  role: "member" | "admin" | "owner" = "member",
): Promise<void> {
  await db.owner.query(
    "insert into app_public.organization_members (organization_id, user_id, role) values ($1, $2, $3)",
    [organizationId, user.userId, role],
  );
}

/** Two organizations with an owner, an admin and a member each: the cross-tenant cast. */
export async function twoTenants(db: TestDatabase) {
  const make = async (label: string) => {
    const owner = await createUser(db, `${label} Owner`);
    const admin = await createUser(db, `${label} Admin`);
    const member = await createUser(db, `${label} Member`);
    const org = await createOrganization(db, owner, `${label} Org`);
    await addMember(db, org.id, admin, "admin");
    await addMember(db, org.id, member, "member");
    return { org, owner, admin, member };
  };
  return { a: await make("Alpha"), b: await make("Beta") };
}

/**
 * Table fixtures: one row in each table whose domain declares one, in
 * test/db/<domain>/<table>.fixture.sql (npm run new:table writes it with the table). Each file is
 * one statement, run as app_owner with $1 = an organization's id and $2 = one of its members'
 * user id. For tests that need a row in every table (test/workers/backup.test.ts): a new table
 * brings its own row and no shared test needs an edit. Returns the files it ran.
 */
export async function fillTableFixtures(db: TestDatabase, organizationId: string, userId: string): Promise<string[]> {
  const root = path.join(projectRoot, "test", "db");
  const files = readdirSync(root, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .flatMap((dir) =>
      readdirSync(path.join(root, dir.name))
        .filter((file) => file.endsWith(".fixture.sql"))
        .map((file) => path.join(root, dir.name, file)),
    )
    .sort();
  for (const file of files) {
    try {
      await db.owner.query(readFileSync(file, "utf8"), [organizationId, userId]);
    } catch (error) {
      throw new Error(`${path.relative(projectRoot, file)}: ${(error as Error).message}`);
    }
  }
  return files.map((file) => path.relative(projectRoot, file));
}
