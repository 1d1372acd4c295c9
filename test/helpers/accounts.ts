// Accounts in tests: register through GraphQL (real password, real session), and take the
// one-time token a mail would carry the way the mail worker does (app_private.issue_account_token,
// which is what workers/tasks/send_account_email.ts calls just before sending).

import jwt from "jsonwebtoken";
import type { TestDatabase } from "./db.ts";
import type { GraphQLResponse, TestServer } from "./server.ts";

export interface RegisteredUser {
  email: string;
  password: string;
  token: string;
  userId: string;
  sessionId: string;
}

let counter = 0;
export function uniqueEmail(label = "person"): string {
  counter += 1;
  return `${label}-${counter}-${process.pid}@example.com`;
}

export async function register(server: TestServer, email = uniqueEmail(), password = "correct horse", name = "Ada"): Promise<RegisteredUser> {
  const r = await server.graphql(
    `mutation($e: String!, $p: String!, $n: String!) { register(input: {email: $e, password: $p, name: $n}) { jwtToken } }`,
    { e: email, p: password, n: name },
  );
  if (r.errors) throw new Error(`register failed: ${JSON.stringify(r.errors)}`);
  const token = r.data.register.jwtToken as string;
  const claims = jwt.decode(token) as { sub: string; session_id: string };
  return { email, password, token, userId: claims.sub, sessionId: claims.session_id };
}

export async function signIn(server: TestServer, email: string, password: string): Promise<GraphQLResponse> {
  return server.graphql(
    `mutation($e: String!, $p: String!) { authenticate(input: {email: $e, password: $p}) { jwtToken } }`,
    { e: email, p: password },
  );
}

/** The token the mail of this purpose would carry (a newer one replaces older ones). */
export async function issueToken(
  db: TestDatabase,
  purpose: "verify_email" | "reset_password" | "change_email",
  userId: string,
  newEmail: string | null = null,
): Promise<string> {
  const { rows } = await db.owner.query("select token from app_private.issue_account_token($1, $2, $3)", [purpose, userId, newEmail]);
  if (rows.length !== 1) throw new Error(`no ${purpose} token issued for ${userId}`);
  return rows[0].token;
}

export function codes(response: { errors?: { extensions?: { code?: string } }[] }): (string | undefined)[] {
  return (response.errors ?? []).map((e) => e.extensions?.code);
}

/** Account mails queued and not yet sent, oldest first. */
export async function queuedAccountMails(db: TestDatabase, userId: string): Promise<{ kind: string; [k: string]: unknown }[]> {
  const { rows } = await db.owner.query(
    `select j.payload from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id
     where t.identifier = 'send_account_email' and j.payload->>'userId' = $1 order by j.id`,
    [userId],
  );
  return rows.map((r) => r.payload);
}

/** Limits high enough that a test file about something else never meets them. */
export async function relaxAttemptLimits(db: TestDatabase): Promise<void> {
  await db.owner.query(
    `update app_private.account_settings set attempt_limits = (
       select jsonb_object_agg(action, (select jsonb_object_agg(scope, '{"max": 100000, "seconds": 60}'::jsonb) from jsonb_object_keys(scopes) scope))
       from jsonb_each(attempt_limits) as a(action, scopes))`,
  );
}
