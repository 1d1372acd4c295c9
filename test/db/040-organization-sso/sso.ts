// Shared by the 040-organization-sso tests: an organization with a verified domain and a
// connection, made through the same functions the API calls.
import { randomBytes } from "node:crypto";
import type { TestDatabase } from "../../helpers/db.ts";
import type { TestUser } from "../../helpers/fixtures.ts";

export async function verifiedDomain(db: TestDatabase, admin: TestUser, organizationId: string, domain = `corp-${randomBytes(4).toString("hex")}.test`) {
  const { rows } = await db.queryAs(admin, "select id, verification_token from app_public.add_sso_domain($1, $2)", [organizationId, domain]);
  await db.queryAs(admin, "select app_hidden.confirm_sso_domain($1, $2)", [rows[0].id, ["v=spf1 -all", `tenantbase-verification=${rows[0].verification_token}`]]);
  return { id: rows[0].id as string, domain };
}

export async function connection(db: TestDatabase, admin: TestUser, organizationId: string, issuer = "https://idp.example.org") {
  const { rows } = await db.queryAs(admin, "select id from app_hidden.set_sso_connection($1, $2, 'client', $3)", [organizationId, issuer, randomBytes(60)]);
  return rows[0].id as string;
}

/** An SSO session of the user through the connection, as exchange_sign_in_code makes it. */
export async function ssoSession(db: TestDatabase, userId: string, connectionId: string): Promise<TestUser & { sessionId: string }> {
  const { rows } = await db.owner.query(
    "insert into app_private.sessions (user_id, expires_at, method, sso_connection_id) values ($1, now() + interval '1 day', 'sso', $2) returning id",
    [userId, connectionId],
  );
  return { userId, sessionId: rows[0].id, email: "" };
}
