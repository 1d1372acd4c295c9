// A real server on an ephemeral port against a test database, and a GraphQL client for it.

import type { AddressInfo } from "node:net";
import jwt from "jsonwebtoken";
import { createApp, type App, type AppOptions } from "../../server/app.ts";
import type { TestDatabase } from "./db.ts";
import type { TestUser } from "./fixtures.ts";

export const TEST_JWT = {
  secret: "test-secret-that-is-at-least-32-characters-long",
  audience: "tenantbase",
  issuer: "tenantbase",
};

export interface GraphQLResponse<T = any> {
  status: number;
  data?: T;
  errors?: { message: string; path?: string[]; extensions?: { code?: string; [key: string]: unknown } }[];
}

export interface TestServer {
  url: string;
  app: App;
  /** POST /graphql; token may be a JWT string or a TestUser (a token is signed for them). */
  graphql<T = any>(query: string, variables?: Record<string, unknown>, token?: string | TestUser | null): Promise<GraphQLResponse<T>>;
  close(): Promise<void>;
}

/** A token like the one authenticate() returns, for a user made with fixtures.createUser. */
export function tokenFor(user: TestUser, overrides: Record<string, unknown> = {}): string {
  return jwt.sign(
    { role: "app_user", sub: user.userId, session_id: user.sessionId, exp: Math.floor(Date.now() / 1000) + 3600, ...overrides },
    TEST_JWT.secret,
    { algorithm: "HS256", audience: TEST_JWT.audience, issuer: TEST_JWT.issuer },
  );
}

export async function startTestServer(db: TestDatabase, options: Partial<AppOptions> = {}): Promise<TestServer> {
  const app = await createApp({ ownerUrl: db.ownerUrl, authUrl: db.authUrl, listenUrl: db.directOwnerUrl, jwt: TEST_JWT, ...options });
  await new Promise<void>((resolve) => app.httpServer.listen(0, "127.0.0.1", resolve));
  const { port } = app.httpServer.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    app,
    async graphql(query, variables, token) {
      const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json" };
      if (token) headers.authorization = `Bearer ${typeof token === "string" ? token : tokenFor(token)}`;
      const response = await fetch(`${url}/graphql`, { method: "POST", headers, body: JSON.stringify({ query, variables }) });
      const body = (await response.json()) as GraphQLResponse;
      return { status: response.status, data: body.data, errors: body.errors };
    },
    close: () => app.close(),
  };
}
