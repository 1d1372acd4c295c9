// Who is calling. An Express middleware in front of /graphql verifies the bearer token before
// PostGraphile sees the request; PostGraphile's context (server/preset.ts) turns the verified
// identity into transaction-local settings. No token means app_anonymous; a bad token is a 401
// with extensions.code INVALID_TOKEN, never a silent downgrade to anonymous.

import type { NextFunction, Request, Response } from "express";
import jwt from "jsonwebtoken";
import type pg from "pg";
import { BUSINESS_ERROR_SQLSTATE } from "./errors.ts";

export interface JwtSettings {
  secret: string;
  audience: string;
  issuer: string;
}

export type Identity = UserIdentity | ApiKeyIdentity;

export interface UserIdentity {
  role: "app_user";
  userId: string;
  sessionId: string;
  apiKeyId?: undefined;
}

/** A request made with an organization API key (Authorization: Bearer tb_live_…). */
export interface ApiKeyIdentity {
  role: "app_user";
  apiKeyId: string;
  organizationId: string;
  userId?: undefined;
  sessionId?: undefined;
}

/** Organization API keys are told apart from JWTs by this prefix (see db/migrations/committed/000004-team-lifecycle.sql). */
export const API_KEY_PREFIX = "tb_live_";

declare global {
  namespace Express {
    interface Request {
      identity?: Identity | null;
      /** Set when the request's transaction refused its session or key (see sessionEndedPlugin). */
      invalidTokenMessage?: string;
    }
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export class InvalidTokenError extends Error {}

/** Verifies signature (HS256 only), expiry (required), audience, issuer and claim shapes. */
export function verifyUserToken(token: string, settings: JwtSettings): { userId: string; sessionId: string } {
  let claims: string | jwt.JwtPayload;
  try {
    claims = jwt.verify(token, settings.secret, {
      algorithms: ["HS256"],
      audience: settings.audience,
      issuer: settings.issuer,
    });
  } catch (error) {
    const reason = error instanceof jwt.TokenExpiredError ? "Token has expired." : "Token is not valid.";
    throw new InvalidTokenError(reason);
  }
  if (typeof claims === "string" || typeof claims.exp !== "number") {
    throw new InvalidTokenError("Token must carry an expiry.");
  }
  const { sub, session_id: sessionId } = claims as { sub?: unknown; session_id?: unknown };
  if (typeof sub !== "string" || !UUID.test(sub) || typeof sessionId !== "string" || !UUID.test(sessionId)) {
    throw new InvalidTokenError("Token is not valid.");
  }
  return { userId: sub, sessionId };
}

/** Tokens kept verified (bounded; oldest dropped first). */
export const VERIFIED_TOKEN_CACHE_SIZE = 10_000;

/**
 * verifyUserToken, remembered per token string until the token's exp: a client sends the same
 * token with every request, and HMAC verification plus jsonwebtoken's claim checks were a tenth
 * of a request's CPU (bench:api profile). Only tokens that passed every check are kept, so
 * garbage cannot fill the cache with anything; whether the session is still live is checked
 * in every request's transaction regardless (server/request-transaction.ts).
 */
export function verifiedTokenCache(settings: JwtSettings, size = VERIFIED_TOKEN_CACHE_SIZE) {
  const verified = new Map<string, { userId: string; sessionId: string; expiresAtMs: number }>();
  return (token: string): { userId: string; sessionId: string } => {
    const hit = verified.get(token);
    if (hit && hit.expiresAtMs > Date.now()) return hit;
    if (hit) verified.delete(token);
    const claims = verifyUserToken(token, settings);
    const { exp, nbf } = jwt.decode(token) as jwt.JwtPayload;
    if (nbf === undefined && typeof exp === "number") {
      if (verified.size >= size) verified.delete(verified.keys().next().value!);
      verified.set(token, { ...claims, expiresAtMs: exp * 1000 });
    }
    return claims;
  };
}

/**
 * The media type of a GraphQL answer that is not a 200 (GraphQL over HTTP): with
 * application/graphql-response+json a client such as Apollo Client 4 reads the body as a GraphQL
 * response (errors[0].extensions.code) whatever the status; with application/json it treats a 401
 * as a transport failure and leaves the code in the body text. So the first when the request
 * names it (and prefers it), else application/json (also for "any type" or no Accept header).
 */
export function graphqlResponseType(req: Request | undefined): string {
  const accept = req?.headers.accept;
  // Named by the client (Apollo Client 4, graphql-http, urql send it); */* or nothing: application/json.
  if (!accept?.includes("application/graphql-response+json")) return "application/json; charset=utf-8";
  const chosen = req!.accepts(["application/graphql-response+json", "application/json"]);
  return chosen === "application/graphql-response+json" ? "application/graphql-response+json; charset=utf-8" : "application/json; charset=utf-8";
}

/** The 401 for a bad token or key: a GraphQL response whose one error has code INVALID_TOKEN. */
export function sendInvalidToken(res: Response, message: string): void {
  res
    .status(401)
    .set("WWW-Authenticate", 'Bearer error="invalid_token"')
    .type(graphqlResponseType(res.req))
    .send(JSON.stringify({ errors: [{ message, extensions: { code: "INVALID_TOKEN" } }] }));
}

/**
 * @param ownerPool authenticates API keys (app_hidden.authenticate_api_key counts each call, a write
 *   that belongs to the request once, not to each of its transactions). A token's session is
 *   checked in the request's transaction instead (server/request-transaction.ts).
 */
export function authMiddleware(settings: JwtSettings, ownerPool: pg.Pool) {
  const verify = verifiedTokenCache(settings);
  return async function authenticate(req: Request, res: Response, next: NextFunction) {
    const header = req.headers.authorization;
    if (header === undefined || header.trim() === "") {
      req.identity = null;
      return next();
    }
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) return sendInvalidToken(res, "Authorization header must be 'Bearer <token>'.");
    if (match[1].startsWith(API_KEY_PREFIX)) {
      // The database compares the hash, refuses revoked/expired keys and counts the call.
      try {
        const { rows } = await ownerPool.query(
          "select api_key_id, organization_id from app_hidden.authenticate_api_key($1)",
          [match[1]],
        );
        if (rows.length !== 1) return sendInvalidToken(res, "API key is not valid, revoked or expired.");
        req.identity = { role: "app_user", apiKeyId: rows[0].api_key_id, organizationId: rows[0].organization_id };
        return next();
      } catch (error) {
        return next(error);
      }
    }
    try {
      // The session itself (logged out? expired?) is checked in the request's own transaction,
      // by app_hidden.start_request() (server/request-transaction.ts): no query here.
      const { userId, sessionId } = verify(match[1]);
      req.identity = { role: "app_user", userId, sessionId };
      return next();
    } catch (error) {
      if (error instanceof InvalidTokenError) return sendInvalidToken(res, error.message);
      return next(error);
    }
  };
}

/** The transaction-local settings PostGraphile applies for this request. */
export function pgSettingsFor(identity: Identity | null | undefined): Record<string, string> {
  if (!identity) return { role: "app_anonymous" };
  if (identity.apiKeyId !== undefined) {
    // No user: current_user_organization_ids() answers the key's organization, with its role.
    return { role: identity.role, "jwt.claims.api_key_id": identity.apiKeyId };
  }
  return {
    role: identity.role,
    "jwt.claims.user_id": identity.userId,
    "jwt.claims.session_id": identity.sessionId,
  };
}

/**
 * A token whose session ended (or a key revoked) since it was issued is refused by
 * app_hidden.start_request() in the request's own transaction, as a GraphQL error with code
 * INVALID_TOKEN. This plugin gives such a request the same answer as a bad token in the
 * middleware above: HTTP 401 with only that error (whatever else the request asked for).
 */
export function sessionEndedPlugin(): GraphileConfig.Plugin {
  return {
    name: "TenantbaseSessionEndedPlugin",
    version: "1.0.0",
    grafast: {
      middleware: {
        async execute(next, event) {
          const result = await next();
          const req = (event.args.requestContext as any)?.expressv4?.req as Request | undefined;
          const errors = (result as { errors?: readonly { originalError?: unknown }[] }).errors;
          if (req && errors) {
            for (const error of errors) {
              const original = error.originalError as { code?: unknown; detail?: unknown; message?: string } | undefined;
              if (original?.code === BUSINESS_ERROR_SQLSTATE && original.detail === "INVALID_TOKEN") {
                req.invalidTokenMessage = original.message ?? "Token is not valid.";
                break;
              }
            }
          }
          return result;
        },
      },
    },
    grafserv: {
      middleware: {
        async processRequest(next, event) {
          const result = await next();
          const req = (event.requestDigest as any)?.requestContext?.expressv4?.req as Request | undefined;
          const res = (event.requestDigest as any)?.requestContext?.expressv4?.res as Response | undefined;
          if (!req?.invalidTokenMessage || !res) return result;
          res.set("WWW-Authenticate", 'Bearer error="invalid_token"');
          const buffer = Buffer.from(JSON.stringify({ errors: [{ message: req.invalidTokenMessage, extensions: { code: "INVALID_TOKEN" } }] }));
          return {
            type: "buffer",
            statusCode: 401,
            headers: { "content-type": graphqlResponseType(req), "content-length": String(buffer.length) },
            buffer,
          };
        },
      },
    },
  };
}
