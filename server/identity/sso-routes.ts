// Sign-in through an organization's own SSO connection (docs/organization-sso.md):
//
//   GET /auth/sso/start?email=<address>[&redirect=<URL in APP_URL>]
//       finds the connection of the organization that verified the address's domain
//       (SSO_NOT_AVAILABLE otherwise), starts section 1's flow against that organization's issuer
//       (state, nonce, PKCE verifier in PostgreSQL, bound to this browser's tb_sign_in cookie) and
//       answers a 302 to the issuer, or {"url": …} when asked for JSON;
//   GET /auth/sso/callback?code=…&state=…
//       takes the flow once (this browser, ten minutes), has the issuer's answer checked by
//       openid-client exactly as for a configured provider (ID token signature, issuer,
//       audience, nonce, expiry; RS256), lets SQL decide the account and the just-in-time
//       membership (db/functions/040-organization-sso/sso-sign-in.sql), and redirects to the app
//       with ?code=<one-time code> (exchangeSignInCode opens a session with method 'sso' that
//       records the connection) or ?error=<CODE>.
//
// The client secret is decrypted here only to talk to the issuer; it is never logged. Mounted
// after section 1's routes (server/identity/routes.ts), whose /auth CORS for APP_URL applies here
// too and whose /auth/:provider handlers pass "sso" on.

import { createHash, randomBytes } from "node:crypto";
import type { Express, Request, Response } from "express";
import type pg from "pg";
import type { Logger } from "../../core/logger.ts";
import type { SignInConfig, SignInProvider } from "../../core/config.ts";
import { allowedRedirect, businessError, cookieValue, ownerTransaction, SIGN_IN_COOKIE, withParams } from "./routes.ts";
import { providerClients, ProviderError, type ProviderClients } from "./providers.ts";
import { decryptSsoSecret } from "./sso-secrets.ts";
import { issuerFetch } from "./issuer-fetch.ts";

export interface SsoRoutesOptions {
  /** app_owner connections: the flow functions live in app_private. */
  pool: pg.Pool;
  config: SignInConfig;
  logger: Logger;
  /** Default: openid-client (tests pass the same). */
  clients?: ProviderClients;
}

interface ConnectionRow {
  connection_id: string;
  organization_id: string;
  issuer: string;
  client_id: string;
  client_secret_encrypted: Buffer;
}

export function mountSsoRoutes(app: Express, options: SsoRoutesOptions): void {
  const { pool, config, logger } = options;
  // issuers chosen by organizations' admins: no internal addresses (outside production, local
  // issuers are allowed, as in tests)
  const clients =
    options.clients ??
    providerClients({ allowHttp: config.allowHttp, fetch: issuerFetch({ allowPrivate: config.allowHttp, allowHttp: config.allowHttp }) });
  const key = config.ssoSecretKey ?? null;
  const secure = config.publicUrl.startsWith("https:");
  // read per request: tests learn the port only once the server listens
  const callbackUri = () => `${config.publicUrl}/auth/sso/callback`;

  /** The connection as a provider openid-client can talk to (its discovery cached per connection). */
  // The name keys openid-client's discovery cache: a connection set again (another issuer, client
  // or secret) gets a fresh one.
  const providerOf = (row: ConnectionRow): SignInProvider => ({
    name: `sso-${row.connection_id}-${createHash("sha256").update(row.issuer).update("\n").update(row.client_id).update("\n").update(row.client_secret_encrypted).digest("hex").slice(0, 16)}`,
    kind: "oidc",
    issuer: row.issuer,
    clientId: row.client_id,
    clientSecret: decryptSsoSecret(key!, row.organization_id, row.client_secret_encrypted),
    scopes: "openid email profile",
    idTokenAlg: "RS256",
    oauthUrl: "",
    apiUrl: "",
  });

  const refuse = (res: Response, status: number, code: string, message: string) =>
    res.status(status).json({ errors: [{ message, extensions: { code } }] });

  app.get("/auth/sso/start", async (req: Request, res: Response) => {
    const redirect = allowedRedirect(req.query.redirect, config.appUrl);
    if (redirect === null) return refuse(res, 400, "REDIRECT_NOT_ALLOWED", "The redirect must be a URL of the app (APP_URL).");
    const email = typeof req.query.email === "string" ? req.query.email.slice(0, 320) : "";
    if (key === null) return refuse(res, 404, "SSO_NOT_AVAILABLE", "Organization SSO is not configured on this server.");
    let row: ConnectionRow | undefined;
    try {
      row = (await pool.query("select * from app_private.sso_connection_for_email($1)", [email])).rows[0];
    } catch (error) {
      logger.warn({ reason: (error as Error).message }, "sso sign-in could not start");
      return refuse(res, 502, "SIGN_IN_FAILED", "Sign-in could not start; try again later.");
    }
    if (!row) return refuse(res, 404, "SSO_NOT_AVAILABLE", "No organization signs in this address's domain through SSO.");
    let browserSecret = cookieValue(req, SIGN_IN_COOKIE);
    if (!browserSecret || !/^[A-Za-z0-9_-]{43}$/.test(browserSecret)) browserSecret = randomBytes(32).toString("base64url");
    try {
      const flow = await ownerTransaction(pool, req, async (client) => {
        const { rows } = await client.query("select state, nonce, code_verifier from app_private.start_sso_sign_in_flow($1, $2, $3)", [
          row.connection_id,
          browserSecret,
          redirect,
        ]);
        return rows[0] as { state: string; nonce: string; code_verifier: string };
      });
      const url = await clients.authorizationUrl(providerOf(row), { state: flow.state, nonce: flow.nonce, codeVerifier: flow.code_verifier }, callbackUri());
      // login_hint: the identity provider can skip asking who it is
      url.searchParams.set("login_hint", email);
      res.cookie(SIGN_IN_COOKIE, browserSecret, { httpOnly: true, secure, sameSite: "lax", path: "/auth", maxAge: 10 * 60 * 1000 });
      res.setHeader("Cache-Control", "no-store");
      if ((req.headers.accept ?? "").includes("application/json")) return void res.json({ url: url.toString() });
      res.redirect(302, url.toString());
    } catch (error) {
      const known = businessError(error);
      if (known) return refuse(res, known.code === "TOO_MANY_ATTEMPTS" ? 429 : 400, known.code, known.message);
      logger.warn({ connection: row.connection_id, reason: (error as Error).message }, "sso sign-in could not start");
      refuse(res, 502, "SIGN_IN_FAILED", "The organization's identity provider could not be reached; try again later.");
    }
  });

  app.get("/auth/sso/callback", async (req: Request, res: Response) => {
    res.setHeader("Cache-Control", "no-store");
    const fallback = `${config.appUrl}/sign-in/callback`;
    const browserSecret = cookieValue(req, SIGN_IN_COOKIE);
    const state = typeof req.query.state === "string" ? req.query.state : "";
    let flow: { id: string; nonce: string; code_verifier: string; redirect_url: string; sso_connection_id: string | null };
    try {
      flow = (await pool.query("select (f).* from app_private.take_sign_in_flow('sso', $1, $2) f", [state, browserSecret ?? ""])).rows[0];
    } catch (error) {
      const known = businessError(error);
      if (!known) logger.warn({ reason: (error as Error).message }, "sso callback failed");
      return void res.redirect(302, withParams(fallback, { error: known?.code ?? "SIGN_IN_FAILED" }));
    }
    const back = (params: Record<string, string>) => res.redirect(302, withParams(flow.redirect_url, params));
    if (typeof req.query.error === "string") return back({ error: "SIGN_IN_CANCELLED" });
    try {
      const row = (await pool.query("select * from app_private.sso_connection($1)", [flow.sso_connection_id])).rows[0] as ConnectionRow | undefined;
      if (!row || key === null) return back({ error: "SIGN_IN_FAILED" });
      const provider = providerOf(row);
      const callbackUrl = new URL(req.originalUrl, config.publicUrl);
      const identity = await clients.identityFromCallback(provider, { state, nonce: flow.nonce, codeVerifier: flow.code_verifier }, callbackUrl, callbackUri());
      const code = await ownerTransaction(pool, req, async (client) => {
        const { rows } = await client.query("select app_private.complete_sso_sign_in_flow($1, $2, $3, $4, $5, $6) as code", [
          flow.id,
          identity.issuer,
          identity.subject,
          identity.email,
          identity.emailVerified,
          identity.name,
        ]);
        return rows[0].code as string;
      });
      back({ code });
    } catch (error) {
      const known = businessError(error);
      if (!known) {
        logger.warn(
          { connection: flow.sso_connection_id, reason: error instanceof ProviderError ? error.message : (error as Error).message },
          "sso callback refused",
        );
      }
      back({ error: known?.code ?? "SIGN_IN_FAILED" });
    }
  });
}
