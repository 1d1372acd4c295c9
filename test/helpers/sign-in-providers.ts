// Real sign-in providers in process, for the tests of server/identity/: an OpenID Connect issuer
// (the oidc-provider package, with its development interactions completed headlessly), a small
// fake of GitHub's OAuth pages and API (/login/oauth/authorize, /login/oauth/access_token,
// /user, /user/emails), and a browser with a cookie jar that follows redirects until it lands
// in the app (APP_URL).
//
// The issuer signs with a key the test holds, so adversarial tests can replace the ID token its
// token endpoint returns (another audience, expired, another nonce, alg none, HMAC) with one that
// only differs in what they attack.

import { createHmac, generateKeyPairSync, randomBytes, sign, type KeyObject } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import Provider from "oidc-provider";
import type { SignInProvider } from "../../core/config.ts";

export interface AccountClaims {
  email?: string;
  email_verified?: boolean;
  name?: string;
}

export interface IdTokenEdit {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  /** How to sign the edited token: the issuer's key (default), HMAC with the client secret, or not at all. */
  signWith?: "issuer" | "hmac" | "none";
  /** Claims put in place of the payload after signing (a signature that does not match). */
  payloadAfterSigning?: Record<string, unknown>;
}

export interface TestIssuer {
  url: string;
  clientId: string;
  clientSecret: string;
  accounts: Map<string, AccountClaims>;
  /** When set, the token endpoint's ID token is replaced by this edit of it. */
  editIdToken: ((token: IdTokenEdit) => IdTokenEdit) | null;
  provider(name?: string): SignInProvider;
  close(): Promise<void>;
}

function listen(server: Server): Promise<string> {
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)));
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections?.();
  return new Promise((resolve) => server.close(() => resolve()));
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

function signJwt(edit: IdTokenEdit, key: KeyObject, secret: string): string {
  const header = { ...edit.header };
  if (edit.signWith === "none") header.alg = "none";
  if (edit.signWith === "hmac") header.alg = "HS256";
  const input = `${b64(header)}.${b64(edit.payload)}`;
  if (edit.signWith === "none") return `${input}.`;
  if (edit.signWith === "hmac") return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
  const signature = sign("sha256", Buffer.from(input), key).toString("base64url");
  if (edit.payloadAfterSigning) return `${b64(header)}.${b64(edit.payloadAfterSigning)}.${signature}`;
  return `${input}.${signature}`;
}

/** An OpenID Connect issuer on 127.0.0.1 whose one client redirects to redirectUri. */
export async function startTestIssuer(redirectUri: () => string): Promise<TestIssuer> {
  const server = createServer();
  const url = await listen(server);
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: "jwk" }), kid: "test-key", use: "sig", alg: "RS256" };
  const clientId = "tenantbase-test";
  const clientSecret = randomBytes(24).toString("hex");
  const accounts = new Map<string, AccountClaims>();
  let redirectUris: string[] = [];
  const oidc = new Provider(url, {
    clients: [],
    jwks: { keys: [jwk as any] },
    findAccount: async (_ctx: unknown, sub: string) => {
      const claims = accounts.get(sub);
      if (!claims) return undefined;
      return { accountId: sub, claims: async () => ({ sub, ...claims }) };
    },
    claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"] },
    features: { devInteractions: { enabled: true } },
    pkce: { required: () => true },
    cookies: { keys: [randomBytes(16).toString("hex")] },
    ttl: { Interaction: 600, Session: 3600, Grant: 3600, AccessToken: 600, IdToken: 600, AuthorizationCode: 60 },
    // static clients are read at construction; the API's port is known later, so the client is
    // found through the adapter below
    adapter: class {
      name: string;
      constructor(name: string) {
        this.name = name;
      }
      static store = new Map<string, any>();
      key(id: string) {
        return `${this.name}:${id}`;
      }
      async upsert(id: string, payload: any) {
        (this.constructor as any).store.set(this.key(id), payload);
      }
      async find(id: string) {
        if (this.name === "Client" && id === clientId) {
          redirectUris = [redirectUri()];
          return {
            client_id: clientId,
            client_secret: clientSecret,
            redirect_uris: redirectUris,
            token_endpoint_auth_method: "client_secret_post",
            id_token_signed_response_alg: "RS256",
          };
        }
        return (this.constructor as any).store.get(this.key(id));
      }
      async findByUid(uid: string) {
        for (const value of (this.constructor as any).store.values()) if (value?.uid === uid) return value;
        return undefined;
      }
      async findByUserCode() {
        return undefined;
      }
      async consume(id: string) {
        const value = (this.constructor as any).store.get(this.key(id));
        if (value) value.consumed = Math.floor(Date.now() / 1000);
      }
      async destroy(id: string) {
        (this.constructor as any).store.delete(this.key(id));
      }
      async revokeByGrantId() {}
    } as any,
  });
  const handler = oidc.callback();
  const issuer: TestIssuer = {
    url,
    clientId,
    clientSecret,
    accounts,
    editIdToken: null,
    provider: (name = "test") => ({
      name,
      kind: "oidc",
      issuer: url,
      clientId,
      clientSecret,
      scopes: "openid email profile",
      idTokenAlg: "RS256",
      oauthUrl: "",
      apiUrl: "",
    }),
    close: () => closeServer(server),
  };
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const edit = issuer.editIdToken;
    if (edit && req.method === "POST" && req.url?.startsWith("/token")) {
      const end = res.end.bind(res);
      (res as any).end = (chunk: any, ...rest: any[]) => {
        try {
          const body = JSON.parse(Buffer.from(chunk).toString("utf8"));
          if (typeof body.id_token === "string") {
            const [h, p] = body.id_token.split(".");
            const edited = edit({ header: JSON.parse(Buffer.from(h, "base64url").toString()), payload: JSON.parse(Buffer.from(p, "base64url").toString()) });
            body.id_token = signJwt(edited, privateKey, clientSecret);
            chunk = JSON.stringify(body);
            res.setHeader("content-length", Buffer.byteLength(chunk));
          }
        } catch {
          // not JSON: passed on as it is
        }
        return end(chunk, ...rest);
      };
    }
    handler(req, res);
  });
  return issuer;
}

export interface GitHubEmail {
  email: string;
  primary: boolean;
  verified: boolean;
}

export interface FakeGitHub {
  url: string;
  clientId: string;
  clientSecret: string;
  /** The user the next authorization signs in as. */
  nextUser: { id: number; login: string; name: string | null; emails: GitHubEmail[] };
  provider(): SignInProvider;
  close(): Promise<void>;
}

/** GitHub's OAuth pages and the two API calls sign-in makes, checking what GitHub checks (PKCE, client secret, redirect URI, one use of a code). */
export async function startFakeGitHub(): Promise<FakeGitHub> {
  const clientId = "Iv1.testclient";
  const clientSecret = randomBytes(20).toString("hex");
  const codes = new Map<string, { user: FakeGitHub["nextUser"]; challenge: string; redirectUri: string }>();
  const tokens = new Map<string, FakeGitHub["nextUser"]>();
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (req.method === "GET" && url.pathname === "/login/oauth/authorize") {
      if (url.searchParams.get("client_id") !== clientId || url.searchParams.get("code_challenge_method") !== "S256") return json(400, { error: "bad_request" });
      const code = randomBytes(10).toString("hex");
      const redirectUri = url.searchParams.get("redirect_uri")!;
      codes.set(code, { user: structuredClone(fake.nextUser), challenge: url.searchParams.get("code_challenge")!, redirectUri });
      const back = new URL(redirectUri);
      back.searchParams.set("code", code);
      back.searchParams.set("state", url.searchParams.get("state") ?? "");
      res.writeHead(302, { location: back.toString() });
      return void res.end();
    }
    if (req.method === "POST" && url.pathname === "/login/oauth/access_token") {
      let raw = "";
      for await (const chunk of req) raw += chunk;
      const form = new URLSearchParams(raw);
      const entry = codes.get(form.get("code") ?? "");
      codes.delete(form.get("code") ?? "");
      const { createHash } = await import("node:crypto");
      const challenge = createHash("sha256").update(form.get("code_verifier") ?? "").digest("base64url");
      if (!entry || form.get("client_id") !== clientId || form.get("client_secret") !== clientSecret || entry.challenge !== challenge || entry.redirectUri !== form.get("redirect_uri")) {
        return json(200, { error: "bad_verification_code" });
      }
      const token = `gho_${randomBytes(16).toString("hex")}`;
      tokens.set(token, entry.user);
      return json(200, { access_token: token, token_type: "bearer", scope: "read:user,user:email" });
    }
    const user = tokens.get((req.headers.authorization ?? "").replace(/^Bearer /, ""));
    if (req.method === "GET" && url.pathname === "/user") return user ? json(200, { id: user.id, login: user.login, name: user.name }) : json(401, { message: "Bad credentials" });
    if (req.method === "GET" && url.pathname === "/user/emails") return user ? json(200, user.emails.map((e) => ({ ...e, visibility: null }))) : json(401, { message: "Bad credentials" });
    json(404, { message: "Not Found" });
  });
  const url = await listen(server);
  const fake: FakeGitHub = {
    url,
    clientId,
    clientSecret,
    nextUser: { id: 1, login: "octocat", name: null, emails: [] },
    provider: () => ({
      name: "github",
      kind: "github",
      issuer: "https://github.com",
      clientId,
      clientSecret,
      scopes: "read:user user:email",
      idTokenAlg: "",
      oauthUrl: url,
      apiUrl: url,
    }),
    close: () => closeServer(server),
  };
  return fake;
}

/** A browser: one cookie jar per host name (ports share cookies, as in browsers). */
export class TestBrowser {
  private jars = new Map<string, Map<string, string>>();

  cookieFor(url: string): string {
    return [...(this.jars.get(new URL(url).hostname) ?? new Map()).entries()].map(([k, v]) => `${k}=${v}`).join("; ");
  }

  private remember(url: string, response: Response): void {
    const jar = this.jars.get(new URL(url).hostname) ?? new Map<string, string>();
    this.jars.set(new URL(url).hostname, jar);
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(";");
      const index = pair.indexOf("=");
      const name = pair.slice(0, index).trim();
      const value = pair.slice(index + 1).trim();
      if (value === "" || /max-age=0|expires=thu, 01 jan 1970/i.test(line)) jar.delete(name);
      else jar.set(name, value);
    }
  }

  async request(url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    const cookie = this.cookieFor(url);
    if (cookie) headers.set("cookie", cookie);
    const response = await fetch(url, { ...init, headers, redirect: "manual" });
    this.remember(url, response);
    return response;
  }

  /**
   * Follows redirects from url, logging in as `login` and consenting at an oidc-provider issuer on
   * the way, until a redirect leads into appUrl (returned, not fetched) or a page answers.
   */
  async signIn(url: string, appUrl: string, login?: string, init: RequestInit = {}): Promise<URL> {
    let current = url;
    let options: RequestInit = init;
    for (let step = 0; step < 20; step++) {
      const response = await this.request(current, options);
      options = {};
      const location = response.headers.get("location");
      if (response.status >= 300 && response.status < 400 && location) {
        const next = new URL(location, current).toString();
        await response.arrayBuffer();
        if (next.startsWith(appUrl)) return new URL(next);
        current = next;
        continue;
      }
      const text = await response.text();
      const interaction = /\/interaction\/[^/?#]+$/.exec(new URL(current).pathname);
      if (response.status === 200 && interaction) {
        const body = text.includes('value="login"') ? new URLSearchParams({ prompt: "login", login: login ?? "" }) : new URLSearchParams({ prompt: "consent" });
        options = { method: "POST", body, headers: { "content-type": "application/x-www-form-urlencoded" } };
        continue;
      }
      throw new Error(`sign-in stopped at ${current}: ${response.status} ${text.slice(0, 300)}`);
    }
    throw new Error("too many redirects");
  }
}

/** The API with the test issuer (as provider "test") and the GitHub fake configured, for one test file. */
export interface SignInRig {
  appUrl: string;
  server: import("./server.ts").TestServer;
  issuer: TestIssuer;
  github: FakeGitHub;
  /** GET /auth/<provider>/start in a browser, through the provider, back to the app: the URL it lands on. */
  signIn(browser: TestBrowser, provider: string, login?: string, query?: Record<string, string>): Promise<URL>;
  /** exchangeSignInCode over GraphQL. */
  exchange(code: string): Promise<import("./server.ts").GraphQLResponse>;
  close(): Promise<void>;
}

export const RIG_APP_URL = "http://app.test:3000";

export async function startSignInRig(db: import("./db.ts").TestDatabase): Promise<SignInRig> {
  const { startTestServer } = await import("./server.ts");
  const { relaxAttemptLimits } = await import("./accounts.ts");
  let serverUrl = "";
  const issuer = await startTestIssuer(() => `${serverUrl}/auth/test/callback`);
  const github = await startFakeGitHub();
  const signIn = { appUrl: RIG_APP_URL, publicUrl: "http://127.0.0.1", providers: [issuer.provider("test"), github.provider()], allowHttp: true };
  const server = await startTestServer(db, { signIn });
  serverUrl = server.url;
  signIn.publicUrl = server.url; // the port is known once it listens; routes read it per request
  await relaxAttemptLimits(db);
  return {
    appUrl: RIG_APP_URL,
    server,
    issuer,
    github,
    signIn: (browser, provider, login, query = {}) =>
      browser.signIn(`${server.url}/auth/${provider}/start?${new URLSearchParams(query)}`, RIG_APP_URL, login),
    exchange: (code) =>
      server.graphql(`mutation($code: String!) { exchangeSignInCode(input: {code: $code}) { jwtToken } }`, { code }),
    async close() {
      await server.close();
      await issuer.close();
      await github.close();
    },
  };
}
