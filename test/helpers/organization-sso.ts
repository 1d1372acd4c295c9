// Organization SSO over real HTTP: the API with SSO_SECRET_KEY set, two real OpenID Connect
// issuers in process (oidc-provider, one per organization, both redirecting to
// /auth/sso/callback), and a DNS TXT resolver the test fills in (an injected dependency: the
// server asks it what node:dns would answer).

import { randomBytes } from "node:crypto";
import type { TestDatabase } from "./db.ts";
import type { TestUser } from "./fixtures.ts";
import { memoryLogger } from "./operations.ts";
import { startTestIssuer, TestBrowser, RIG_APP_URL, type TestIssuer } from "./sign-in-providers.ts";
import type { GraphQLResponse, TestServer } from "./server.ts";

export interface SsoRig {
  server: TestServer;
  issuers: [TestIssuer, TestIssuer];
  /** hostname → TXT records, what "DNS" answers. */
  dns: Map<string, string[][]>;
  logLines: string[];
  /** /auth/sso/start?email= in a new browser, through the issuer as `login`, back to the app. */
  signIn(email: string, login: string): Promise<URL>;
  exchange(code: string): Promise<GraphQLResponse>;
  /** A domain claimed, published in DNS and verified through GraphQL by the admin. */
  verifiedDomain(admin: TestUser, organizationId: string): Promise<string>;
  /** setSsoConnection to the issuer through GraphQL. */
  connect(admin: TestUser, organizationId: string, issuer: TestIssuer): Promise<GraphQLResponse>;
  close(): Promise<void>;
}

export async function startSsoRig(db: TestDatabase): Promise<SsoRig> {
  const { startTestServer } = await import("./server.ts");
  const { relaxAttemptLimits } = await import("./accounts.ts");
  let serverUrl = "";
  const issuers: [TestIssuer, TestIssuer] = [
    await startTestIssuer(() => `${serverUrl}/auth/sso/callback`),
    await startTestIssuer(() => `${serverUrl}/auth/sso/callback`),
  ];
  const dns = new Map<string, string[][]>();
  const resolveTxt = async (hostname: string) => {
    const found = dns.get(hostname);
    if (!found) throw Object.assign(new Error(`queryTxt ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
    return found;
  };
  const { logger, lines } = memoryLogger();
  const signIn = { appUrl: RIG_APP_URL, publicUrl: "http://127.0.0.1", providers: [], allowHttp: true, ssoSecretKey: randomBytes(32) };
  const server = await startTestServer(db, { signIn, ssoResolveTxt: resolveTxt, logger });
  serverUrl = server.url;
  signIn.publicUrl = server.url;
  await relaxAttemptLimits(db);
  const rig: SsoRig = {
    server,
    issuers,
    dns,
    logLines: lines,
    signIn: (email, login) =>
      new TestBrowser().signIn(`${server.url}/auth/sso/start?${new URLSearchParams({ email })}`, RIG_APP_URL, login),
    exchange: (code) => server.graphql(`mutation($code: String!) { exchangeSignInCode(input: {code: $code}) { jwtToken } }`, { code }),
    async verifiedDomain(admin, organizationId) {
      const domain = `corp-${randomBytes(4).toString("hex")}.test`;
      const added = await server.graphql(
        `mutation($o: UUID!, $d: String!) { addSsoDomain(input: {organizationId: $o, domain: $d}) { ssoDomain { id verificationRecord } } }`,
        { o: organizationId, d: domain },
        admin,
      );
      const { id, verificationRecord } = added.data.addSsoDomain.ssoDomain;
      dns.set(`_tenantbase.${domain}`, [["v=other"], [verificationRecord.slice(0, 10), verificationRecord.slice(10)]]);
      const verified = await server.graphql(`mutation($id: UUID!) { verifySsoDomain(input: {id: $id}) { verifiedAt } }`, { id }, admin);
      if (verified.errors) throw new Error(JSON.stringify(verified.errors));
      return domain;
    },
    connect: (admin, organizationId, issuer) =>
      server.graphql(
        `mutation($o: UUID!, $i: String!, $c: String!, $s: String!) { setSsoConnection(input: {organizationId: $o, issuer: $i, clientId: $c, clientSecret: $s}) { ssoProviderId issuer clientId } }`,
        { o: organizationId, i: issuer.url, c: issuer.clientId, s: issuer.clientSecret },
        admin,
      ),
    async close() {
      await server.close();
      for (const issuer of issuers) await issuer.close();
    },
  };
  return rig;
}

/** A verified user with an address of our choosing and a password session, the quick way. */
export async function userWithEmail(db: TestDatabase, email: string): Promise<TestUser> {
  const { rows } = await db.owner.query(
    `with u as (insert into app_public.users (email, name, email_verified_at) values ($1, 'Domain Person', now()) returning id)
     insert into app_private.sessions (user_id, expires_at) select id, now() + interval '1 day' from u
     returning user_id, id as session_id`,
    [email],
  );
  return { userId: rows[0].user_id, sessionId: rows[0].session_id, email };
}
