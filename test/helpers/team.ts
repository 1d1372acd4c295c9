// Helpers for the team-lifecycle tests (issue 5): business-error assertions, invitations and
// API keys made through the real SQL functions.

import type pg from "pg";
import type { Actor, TestDatabase } from "./db.ts";
import { createUser, type TestUser } from "./fixtures.ts";
import { withSettings } from "../../db/transaction.ts";

/** The business code (app_hidden.raise_error) a rejected query carried, or a rethrow. */
export async function errorCode(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    const e = error as { code?: string; detail?: string; message?: string };
    if (e.code === "TB000" && typeof e.detail === "string") return e.detail;
    throw error;
  }
  throw new Error("expected the query to fail with a business error, but it succeeded");
}

export async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  expect(await errorCode(promise)).toBe(code);
}

/** Settles all promises and counts successes and business-error codes. */
export async function tally(promises: Promise<unknown>[]): Promise<{ ok: number; codes: Record<string, number> }> {
  const settled = await Promise.allSettled(promises);
  const codes: Record<string, number> = {};
  let ok = 0;
  for (const result of settled) {
    if (result.status === "fulfilled") ok += 1;
    else {
      const e = result.reason as { code?: string; detail?: string; message?: string };
      const code = e.code === "TB000" ? String(e.detail) : `SQL:${e.code}:${e.message}`;
      codes[code] = (codes[code] ?? 0) + 1;
    }
  }
  return { ok, codes };
}

export interface Invitation {
  id: string;
  token: string;
  email: string;
  role: string;
  status: string;
}

export async function invite(
  db: TestDatabase,
  as: Actor,
  organizationId: string,
  email: string,
  role: "member" | "admin" | "owner" = "member",
): Promise<Invitation> {
  const { rows } = await db.queryAs(
    as,
    `select (r.invitation).id, (r.invitation).email::text, (r.invitation).role::text, (r.invitation).status::text,
            r.invitation_token as token
     from app_public.invite_member($1, $2, $3) r`,
    [organizationId, email, role],
  );
  return rows[0];
}

export async function accept(db: TestDatabase, as: Actor, token: string) {
  const { rows } = await db.queryAs(as, "select * from app_public.accept_invitation($1)", [token]);
  return rows[0];
}

/** A user whose email is given (for invitations to a known address). */
export async function createUserWithEmail(db: TestDatabase, email: string, name = "Invitee"): Promise<TestUser> {
  const user = await createUser(db, name);
  await db.owner.query("update app_public.users set email = $2 where id = $1", [user.userId, email]);
  return { ...user, email };
}

export async function setPlan(db: TestDatabase, organizationId: string, planId: string): Promise<void> {
  await db.owner.query("update app_public.organizations set plan_id = $2 where id = $1", [organizationId, planId]);
}

/** Runs one query as the holder of an API key (what the server does for Bearer tb_live_…). */
export function queryAsApiKey<R extends pg.QueryResultRow = any>(
  db: TestDatabase,
  apiKeyId: string,
  sql: string,
  values: unknown[] = [],
): Promise<pg.QueryResult<R>> {
  return withSettings(db.auth, { role: "app_user", "jwt.claims.user_id": "", "jwt.claims.api_key_id": apiKeyId }, (client) =>
    client.query<R>(sql, values),
  );
}

/** An API key made through app_public.create_api_key as `as`; the secret is in the answer once. */
export async function createApiKey(db: TestDatabase, as: Actor, org: string, name = "backend", role = "member", expiresAt: string | null = null) {
  const { rows } = await db.queryAs(
    as,
    `select (r.api_key).id, (r.api_key).role::text, (r.api_key).secret_prefix, (r.api_key).expires_at, r.secret
     from app_public.create_api_key($1, $2, $3, $4) r`,
    [org, name, role, expiresAt],
  );
  return rows[0];
}
