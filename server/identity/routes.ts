// The browser's sign-in through a provider (docs/sign-in-providers.md):
//
//   GET /auth/<provider>/start?redirect=<URL in APP_URL>[&link=1]
//       makes a flow in PostgreSQL (state, nonce, PKCE verifier; limited per client address),
//       binds it to this browser (an HttpOnly cookie whose hash the flow keeps) and answers a 302
//       to the provider, or {"url": …} when the request asks for JSON. With link=1 it links the
//       provider to the account of the Bearer token instead of signing in (JSON only: a browser
//       navigation carries no token).
//   GET /auth/<provider>/callback?code=…&state=…
//       takes the flow once (this browser, not expired), has the provider's answer checked
//       (server/identity/providers.ts), lets SQL decide the account
//       (db/functions/030-identities/identity-linking.sql), and redirects the browser to the
//       flow's redirect URL with ?code=<one-time code> (the app exchanges it through GraphQL,
//       exchangeSignInCode, for its jwtToken: never a token in a URL), ?linked=<provider> after a
//       link, or ?error=<CODE> (nothing else about what went wrong).
//
// Redirects stay inside APP_URL: anything else is refused at the start (REDIRECT_NOT_ALLOWED),
// so nobody can make the API hand a code to another site.

import { randomBytes } from "node:crypto";
import type { Express, NextFunction, Request, Response } from "express";
import type pg from "pg";
import type { Logger } from "../../core/logger.ts";
import type { SignInConfig, SignInProvider } from "../../core/config.ts";
import { verifyUserToken, type JwtSettings } from "../auth.ts";
import { clientSettings } from "../client-origin.ts";
import { extraExtensions } from "../errors.ts";
import { providerClients, ProviderError, type ProviderClients } from "./providers.ts";

export { signInConfig, type SignInConfig } from "../../core/config.ts";

export const SIGN_IN_COOKIE = "tb_sign_in";

export interface SignInRoutesOptions {
  /** app_owner connections: the flow functions live in app_private. */
  pool: pg.Pool;
  config: SignInConfig;
  jwt: JwtSettings;
  logger: Logger;
  /** Default: openid-client and GitHub's API (tests pass the same, pointed at local providers). */
  clients?: ProviderClients;
}

export interface BusinessError {
  code: string;
  message: string;
  extensions: Record<string, string | number | boolean>;
}

export function businessError(error: unknown): BusinessError | null {
  const e = error as { code?: string; detail?: string; message?: string; hint?: string };
  if (e?.code === "TB000" && e.detail) return { code: e.detail, message: e.message ?? "", extensions: extraExtensions(e.hint) };
  return null;
}

export function cookieValue(req: Request, name: string): string | null {
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return rest.join("=") || null;
  }
  return null;
}

/** The redirect URL the app asked for, if it is inside APP_URL (same origin, under its path). */
export function allowedRedirect(value: unknown, appUrl: string): string | null {
  const base = new URL(`${appUrl}/`);
  if (value === undefined) return `${appUrl}/sign-in/callback`;
  if (typeof value !== "string" || value.length > 2000 || /[\\\s]/.test(value)) return null;
  let url: URL;
  try {
    // a path is taken relative to APP_URL's origin; "//evil.example" parses to another origin
    url = new URL(value, base);
  } catch {
    return null;
  }
  if (url.origin !== base.origin || !url.pathname.startsWith(base.pathname) || url.username || url.password) return null;
  url.hash = "";
  return url.toString();
}

export function withParams(target: string, params: Record<string, string>): string {
  const url = new URL(target);
  for (const key of ["code", "error", "linked"]) url.searchParams.delete(key);
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  return url.toString();
}

export async function ownerTransaction<T>(pool: pg.Pool, req: Request, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query("begin");
    await client.query("select set_config(s.key, s.value, true) from json_each_text($1::json) s", [JSON.stringify(clientSettings(req))]);
    const result = await fn(client);
    await client.query("commit");
    return result;
  } catch (error) {
    await client.query("rollback").catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

export function mountSignInRoutes(app: Express, options: SignInRoutesOptions): void {
  const { pool, config, logger } = options;
  const clients = options.clients ?? providerClients({ allowHttp: config.allowHttp });
  const providers = new Map(config.providers.map((p) => [p.name, p]));
  const secure = config.publicUrl.startsWith("https:");
  const callbackUri = (provider: SignInProvider) => `${config.publicUrl}/auth/${provider.name}/callback`;
  const appOrigin = new URL(config.appUrl).origin;

  const refuse = (res: Response, status: number, error: BusinessError | { code: string; message: string }) => {
    if ("extensions" in error && typeof error.extensions.retryAfter === "number") res.setHeader("Retry-After", String(error.extensions.retryAfter));
    res.status(status).json({ errors: [{ message: error.message, extensions: { code: error.code, ...("extensions" in error ? error.extensions : {}) } }] });
  };

  // The app may call start with fetch (JSON, and a token to link): only from APP_URL's origin.
  app.use("/auth", (req: Request, res: Response, next: NextFunction) => {
    if (req.headers.origin === appOrigin) {
      res.setHeader("Access-Control-Allow-Origin", appOrigin);
      res.setHeader("Access-Control-Allow-Credentials", "true");
      res.setHeader("Vary", "Origin");
      if (req.method === "OPTIONS") {
        res.setHeader("Access-Control-Allow-Methods", "GET");
        res.setHeader("Access-Control-Allow-Headers", "authorization, accept");
        res.setHeader("Access-Control-Max-Age", "600");
        return void res.status(204).end();
      }
    }
    next();
  });

  app.get("/auth/:provider/start", async (req: Request, res: Response, next: NextFunction) => {
    // organizations' own SSO: server/identity/sso-routes.ts, mounted after these
    if (req.params.provider === "sso") return next();
    const provider = providers.get(String(req.params.provider));
    if (!provider) return refuse(res, 404, { code: "UNKNOWN_PROVIDER", message: "No such sign-in provider." });
    const redirect = allowedRedirect(req.query.redirect, config.appUrl);
    if (redirect === null) return refuse(res, 400, { code: "REDIRECT_NOT_ALLOWED", message: "The redirect must be a URL of the app (APP_URL)." });
    const wantsJson = (req.headers.accept ?? "").includes("application/json");
    let linkUserId: string | null = null;
    if (req.query.link !== undefined) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "");
      try {
        if (!match) throw new Error("no token");
        const { userId, sessionId } = verifyUserToken(match[1], options.jwt);
        const { rows } = await pool.query("select app_hidden.session_is_live($1, $2) as live", [sessionId, userId]);
        if (!rows[0]?.live) throw new Error("session ended");
        linkUserId = userId;
      } catch {
        return refuse(res, 401, { code: "NOT_AUTHENTICATED", message: "Linking a provider needs your token (Authorization: Bearer)." });
      }
    }
    // One secret per browser, reused by its concurrent flows; only its hash is stored.
    let browserSecret = cookieValue(req, SIGN_IN_COOKIE);
    if (!browserSecret || !/^[A-Za-z0-9_-]{43}$/.test(browserSecret)) browserSecret = randomBytes(32).toString("base64url");
    try {
      const flow = await ownerTransaction(pool, req, async (client) => {
        const { rows } = await client.query(
          "select state, nonce, code_verifier from app_private.start_sign_in_flow($1, $2, $3, $4)",
          [provider.name, browserSecret, redirect, linkUserId],
        );
        return rows[0] as { state: string; nonce: string; code_verifier: string };
      });
      const url = await clients.authorizationUrl(provider, { state: flow.state, nonce: flow.nonce, codeVerifier: flow.code_verifier }, callbackUri(provider));
      res.cookie(SIGN_IN_COOKIE, browserSecret, { httpOnly: true, secure, sameSite: "lax", path: "/auth", maxAge: 10 * 60 * 1000 });
      res.setHeader("Cache-Control", "no-store");
      if (wantsJson) return void res.json({ url: url.toString() });
      res.redirect(302, url.toString());
    } catch (error) {
      const known = businessError(error);
      if (known) return refuse(res, known.code === "TOO_MANY_ATTEMPTS" ? 429 : 400, known);
      logger.warn({ provider: provider.name, reason: (error as Error).message }, "sign-in could not start");
      refuse(res, 502, { code: "SIGN_IN_FAILED", message: "The sign-in provider could not be reached; try again later." });
    }
  });

  app.get("/auth/:provider/callback", async (req: Request, res: Response, next: NextFunction) => {
    if (req.params.provider === "sso") return next();
    res.setHeader("Cache-Control", "no-store");
    const fallback = `${config.appUrl}/sign-in/callback`;
    const provider = providers.get(String(req.params.provider));
    const browserSecret = cookieValue(req, SIGN_IN_COOKIE);
    const state = typeof req.query.state === "string" ? req.query.state : "";
    if (!provider) return void res.redirect(302, withParams(fallback, { error: "UNKNOWN_PROVIDER" }));
    let flow: { id: string; nonce: string; code_verifier: string; redirect_url: string; link_user_id: string | null };
    try {
      flow = (await pool.query("select (f).* from app_private.take_sign_in_flow($1, $2, $3) f", [provider.name, state, browserSecret ?? ""])).rows[0];
    } catch (error) {
      const known = businessError(error);
      if (!known) logger.warn({ provider: provider.name, reason: (error as Error).message }, "sign-in callback failed");
      return void res.redirect(302, withParams(fallback, { error: known?.code ?? "SIGN_IN_FAILED" }));
    }
    const back = (params: Record<string, string>) => res.redirect(302, withParams(flow.redirect_url, params));
    if (typeof req.query.error === "string") return back({ error: "SIGN_IN_CANCELLED" });
    try {
      const callbackUrl = new URL(req.originalUrl, config.publicUrl);
      const identity = await clients.identityFromCallback(provider, { state, nonce: flow.nonce, codeVerifier: flow.code_verifier }, callbackUrl, callbackUri(provider));
      const code = await ownerTransaction(pool, req, async (client) => {
        const { rows } = await client.query("select app_private.complete_sign_in_flow($1, $2, $3, $4, $5, $6) as code", [
          flow.id,
          identity.issuer,
          identity.subject,
          identity.email,
          identity.emailVerified,
          identity.name,
        ]);
        return rows[0].code as string | null;
      });
      back(code === null ? { linked: provider.name } : { code });
    } catch (error) {
      const known = businessError(error);
      if (!known) {
        logger.warn(
          { provider: provider.name, reason: error instanceof ProviderError ? error.message : (error as Error).message },
          "sign-in callback refused",
        );
      }
      back({ error: known?.code ?? "SIGN_IN_FAILED" });
    }
  });
}

