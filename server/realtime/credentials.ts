// Who opened a websocket: the token travels in graphql-ws's connection_init payload, as
// `{ "Authorization": "Bearer <token>" }` (what Ruru sends from its headers pane; the key is
// case-insensitive), never in the URL. The same checks as an HTTP request (server/auth.ts): a JWT
// is verified (HS256 pinned, exp required, aud/iss) and its session must be live; an API key is
// checked by the database. Anything else is refused with a reason the client sees in the close
// frame.

import jwt from "jsonwebtoken";
import type pg from "pg";
import { API_KEY_PREFIX, InvalidTokenError, verifyUserToken, type Identity, type JwtSettings } from "../auth.ts";

export interface ConnectionCredentials {
  identity: Identity;
  /** When the JWT expires (ms since epoch); null for API keys (the database checks their expiry). */
  expiresAt: number | null;
  /** The user or API key, for the per-user connection limit. */
  principal: string;
  /** An API key's plan budget of sockets for its organization (null: the server default). */
  maxOrganizationSockets?: number | null;
}

/** Refused at connection_init; the message is the close reason (kept under 123 bytes). */
export class ConnectionRefused extends Error {}

function authorizationOf(params: Record<string, unknown> | undefined): string | null {
  if (!params) return null;
  for (const [key, value] of Object.entries(params)) {
    if (key.toLowerCase() === "authorization" && typeof value === "string") return value;
  }
  return null;
}

export async function verifyConnection(
  params: Record<string, unknown> | undefined,
  settings: JwtSettings,
  ownerPool: pg.Pool,
): Promise<ConnectionCredentials> {
  const header = authorizationOf(params);
  if (header === null || header.trim() === "") {
    throw new ConnectionRefused('connection_init must carry {"Authorization": "Bearer <token>"}.');
  }
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) throw new ConnectionRefused("Authorization must be 'Bearer <token>'.");
  const token = match[1];
  if (token.startsWith(API_KEY_PREFIX)) {
    // With the organization's plan budget of sockets: a key's socket counts in its organization
    // from connection_init (websockets.ts).
    const { rows } = await ownerPool.query(
      `select k.api_key_id, k.organization_id, p.max_realtime_sockets
       from app_hidden.authenticate_api_key($1) k
       left join lateral app_private.organization_plan(k.organization_id) p on true`,
      [token],
    );
    if (rows.length !== 1) throw new ConnectionRefused("API key is not valid, revoked or expired.");
    return {
      identity: { role: "app_user", apiKeyId: rows[0].api_key_id, organizationId: rows[0].organization_id },
      expiresAt: null,
      principal: `key:${rows[0].api_key_id}`,
      maxOrganizationSockets: rows[0].max_realtime_sockets ?? null,
    };
  }
  let claims: { userId: string; sessionId: string };
  try {
    claims = verifyUserToken(token, settings);
  } catch (error) {
    if (error instanceof InvalidTokenError) throw new ConnectionRefused(error.message);
    throw error;
  }
  const { rows } = await ownerPool.query("select app_hidden.session_is_live($1, $2) as live", [claims.sessionId, claims.userId]);
  if (!rows[0]?.live) throw new ConnectionRefused("Session has ended; sign in again.");
  // verifyUserToken has checked the signature and that exp is a number.
  const { exp } = jwt.decode(token) as { exp: number };
  return {
    identity: { role: "app_user", userId: claims.userId, sessionId: claims.sessionId },
    expiresAt: exp * 1000,
    principal: `user:${claims.userId}`,
  };
}
