// The provider side of a sign-in: where to send the browser, and what the provider's answer proves
// (issuer, subject, email and whether the provider verified it). OpenID Connect issuers through
// openid-client 6: discovery (cached per provider), PKCE S256, state and nonce, and the ID
// token's issuer, audience, nonce, expiry and signature (against the issuer's JWKS) checked, its algorithm pinned to the
// provider's OIDC_<NAME>_ID_TOKEN_ALG (asymmetric only: `none` and HMAC are refused). GitHub is
// OAuth 2, not OpenID Connect: its addresses and their `verified` flags come from GET
// /user/emails (the primary address alone proves nothing). Nothing here decides which account an
// identity signs in to: db/functions/030-identities/identity-linking.sql does.

import * as client from "openid-client";
import type { SignInProvider } from "../../core/config.ts";

/** What a provider proved about the person at its callback. */
export interface ProviderIdentity {
  issuer: string;
  subject: string;
  email: string | null;
  emailVerified: boolean;
  name: string | null;
}

/** The flow's secrets, made in PostgreSQL (app_private.start_sign_in_flow). */
export interface FlowSecrets {
  state: string;
  nonce: string;
  codeVerifier: string;
}

/** A provider refused or answered something we do not accept; the message is for logs only. */
export class ProviderError extends Error {}

const TIMEOUT_SECONDS = 10;

export interface ProviderClients {
  authorizationUrl(provider: SignInProvider, flow: FlowSecrets, redirectUri: string): Promise<URL>;
  identityFromCallback(provider: SignInProvider, flow: FlowSecrets, callbackUrl: URL, redirectUri: string): Promise<ProviderIdentity>;
}

export function providerClients(options: { allowHttp: boolean; fetch?: client.CustomFetch }): ProviderClients {
  const configurations = new Map<string, Promise<client.Configuration>>();

  function configuration(provider: SignInProvider): Promise<client.Configuration> {
    let found = configurations.get(provider.name);
    if (!found) {
      const insecure = options.allowHttp && provider.issuer.startsWith("http:");
      found = client.discovery(
        new URL(provider.issuer),
        provider.clientId,
        { client_secret: provider.clientSecret, id_token_signed_response_alg: provider.idTokenAlg },
        client.ClientSecretPost(provider.clientSecret),
        // The ID token's signature is checked against the issuer's published keys too, though the
        // token came straight from its token endpoint (openid-client leaves that to TLS by default).
        {
          execute: [client.enableNonRepudiationChecks, ...(insecure ? [client.allowInsecureRequests] : [])],
          timeout: TIMEOUT_SECONDS,
          // organizations' own issuers: through server/identity/issuer-fetch.ts
          ...(options.fetch ? { [client.customFetch]: options.fetch } : {}),
        },
      );
      configurations.set(provider.name, found);
      // a failed discovery (provider down at the time) is tried again by the next sign-in
      found.catch(() => configurations.delete(provider.name));
    }
    return found;
  }

  return {
    async authorizationUrl(provider, flow, redirectUri) {
      const challenge = await client.calculatePKCECodeChallenge(flow.codeVerifier);
      if (provider.kind === "github") {
        const url = new URL("/login/oauth/authorize", provider.oauthUrl);
        url.search = new URLSearchParams({
          client_id: provider.clientId,
          redirect_uri: redirectUri,
          scope: provider.scopes,
          state: flow.state,
          code_challenge: challenge,
          code_challenge_method: "S256",
          allow_signup: "true",
        }).toString();
        return url;
      }
      const config = await configuration(provider);
      return client.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri,
        scope: provider.scopes,
        state: flow.state,
        nonce: flow.nonce,
        code_challenge: challenge,
        code_challenge_method: "S256",
      });
    },

    async identityFromCallback(provider, flow, callbackUrl, redirectUri) {
      if (provider.kind === "github") return gitHubIdentity(provider, flow, callbackUrl, redirectUri);
      const config = await configuration(provider);
      let tokens;
      try {
        tokens = await client.authorizationCodeGrant(config, callbackUrl, {
          pkceCodeVerifier: flow.codeVerifier,
          expectedState: flow.state,
          expectedNonce: flow.nonce,
          idTokenExpected: true,
        }, { redirect_uri: redirectUri });
      } catch (error) {
        throw new ProviderError(`${provider.name}: the code exchange or the ID token was refused: ${(error as Error).message}`);
      }
      const claims = tokens.claims();
      if (!claims) throw new ProviderError(`${provider.name}: no ID token`);
      let email = typeof claims.email === "string" ? claims.email : null;
      let emailVerified = claims.email_verified === true;
      let name = typeof claims.name === "string" ? claims.name : null;
      if (email === null) {
        // Providers that conform their ID tokens send email claims from userinfo instead.
        try {
          const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
          email = typeof info.email === "string" ? info.email : null;
          emailVerified = info.email_verified === true;
          name ??= typeof info.name === "string" ? info.name : null;
        } catch (error) {
          throw new ProviderError(`${provider.name}: userinfo was refused: ${(error as Error).message}`);
        }
      }
      return { issuer: claims.iss, subject: claims.sub, email, emailVerified, name };
    },
  };
}

async function gitHubJson(url: URL, init: RequestInit): Promise<unknown> {
  const response = await fetch(url, { ...init, redirect: "error", signal: AbortSignal.timeout(TIMEOUT_SECONDS * 1000) });
  if (!response.ok) throw new ProviderError(`GitHub ${url.pathname} answered ${response.status}`);
  const length = Number(response.headers.get("content-length") ?? 0);
  if (length > 1_000_000) throw new ProviderError(`GitHub ${url.pathname} answered ${length} bytes`);
  return response.json();
}

async function gitHubIdentity(provider: SignInProvider, flow: FlowSecrets, callbackUrl: URL, redirectUri: string): Promise<ProviderIdentity> {
  const code = callbackUrl.searchParams.get("code");
  if (!code || callbackUrl.searchParams.get("state") !== flow.state) throw new ProviderError("GitHub: no code, or another state");
  const token = (await gitHubJson(new URL("/login/oauth/access_token", provider.oauthUrl), {
    method: "POST",
    headers: { accept: "application/json", "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      client_id: provider.clientId,
      client_secret: provider.clientSecret,
      code,
      redirect_uri: redirectUri,
      code_verifier: flow.codeVerifier,
    }),
  })) as { access_token?: unknown; error?: unknown };
  if (typeof token.access_token !== "string") throw new ProviderError(`GitHub refused the code: ${String(token.error ?? "no access_token")}`);
  const headers = { accept: "application/vnd.github+json", authorization: `Bearer ${token.access_token}`, "user-agent": "tenantbase" };
  const user = (await gitHubJson(new URL("/user", provider.apiUrl), { headers })) as { id?: unknown; name?: unknown; login?: unknown };
  if (typeof user.id !== "number" && typeof user.id !== "string") throw new ProviderError("GitHub /user has no id");
  const emails = await gitHubJson(new URL("/user/emails", provider.apiUrl), { headers });
  const list = Array.isArray(emails) ? (emails as { email?: unknown; primary?: unknown; verified?: unknown }[]).slice(0, 100) : [];
  // The primary address if GitHub verified it, else any verified one; an unverified primary is
  // passed on as unverified (it can never link to an existing account).
  const usable = list.filter((e) => typeof e.email === "string");
  const chosen =
    usable.find((e) => e.primary === true && e.verified === true) ??
    usable.find((e) => e.verified === true) ??
    usable.find((e) => e.primary === true) ??
    null;
  return {
    issuer: provider.issuer,
    subject: String(user.id),
    email: chosen ? (chosen.email as string) : null,
    emailVerified: chosen?.verified === true,
    name: typeof user.name === "string" ? user.name : typeof user.login === "string" ? user.login : null,
  };
}
