// Builds the HTTP server: Express with PostGraphile (grafserv) at /graphql, Ruru at /graphiql,
// the auth middleware in front of /graphql, and /healthz. Used by `npm start` and by the tests,
// which start it on an ephemeral port against their own database.

import { createServer, type Server } from "node:http";
import express from "express";
import pg from "pg";
import { postgraphile, type PostGraphileInstance } from "postgraphile";
import { grafserv } from "postgraphile/grafserv/express/v4";
import { authMiddleware, type JwtSettings } from "./auth.ts";
import { makePreset } from "./preset.ts";

export interface AppOptions {
  ownerUrl: string;
  authUrl: string;
  jwt: JwtSettings;
  graphiql?: boolean;
  authPoolSize?: number;
}

export interface App {
  httpServer: Server;
  pgl: PostGraphileInstance;
  ownerPool: pg.Pool;
  authPool: pg.Pool;
  close(): Promise<void>;
}

export async function createApp(options: AppOptions): Promise<App> {
  const authPool = new pg.Pool({ connectionString: options.authUrl, max: options.authPoolSize ?? 10 });
  const ownerPool = new pg.Pool({ connectionString: options.ownerUrl, max: 4 });
  // An idle connection dropped by the server must not crash the process.
  authPool.on("error", () => {});
  ownerPool.on("error", () => {});

  const pgl = postgraphile(makePreset({ authPool, jwt: options.jwt, graphiql: options.graphiql }));
  const serv = pgl.createServ(grafserv);

  const app = express();
  app.disable("x-powered-by");
  app.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });
  app.use("/graphql", authMiddleware(options.jwt, ownerPool));

  const httpServer = createServer(app);
  await serv.addTo(app, httpServer);

  let closed = false;
  return {
    httpServer,
    pgl,
    ownerPool,
    authPool,
    async close() {
      if (closed) return;
      closed = true;
      await new Promise<void>((resolve) => {
        httpServer.close(() => resolve());
        httpServer.closeIdleConnections?.();
      });
      await serv.release(); // also releases pgl
      await Promise.all([authPool.end(), ownerPool.end()]);
    },
  };
}
