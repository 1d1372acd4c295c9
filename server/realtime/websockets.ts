// GraphQL over websockets (the graphql-ws protocol) on /graphql, built from grafserv's own
// graphql-ws configuration (makeGraphQLWSConfig: parse, validate with the same limits as HTTP,
// execute through PostGraphile, mask errors) plus what tenantbase adds around it:
// - connection_init must carry a valid token (credentials.ts); a bad one closes the socket with
//   4401 and the reason; no operation runs on an unauthenticated socket;
// - only subscriptions: queries and mutations go over HTTP, where every request re-checks its
//   session;
// - limits: sockets per process (503 at upgrade), sockets per user or API key (4429), active
//   subscriptions per socket (TOO_MANY_SUBSCRIPTIONS), message size (1009 from ws);
// - budgets per organization (issue 25, A4/A5), so that no tenant takes what the others need:
//   sockets (SOCKET_LIMIT_REACHED) and subscriptions (SUBSCRIPTION_LIMIT_REACHED), from the
//   plan (plans.max_realtime_sockets / max_realtime_subscriptions) or the server's defaults, and
//   never more than REALTIME_MAX_ORGANIZATION_SHARE percent of the process's sockets for one
//   organization. How a socket counts: an API key belongs to one organization, so its socket
//   counts there from connection_init (refused with close 4429, reason "SOCKET_LIMIT_REACHED: …").
//   A user may belong to many organizations, and what a socket costs (its subscriptions' fan-out)
//   is driven by the organizations it follows, so a user's socket counts in each organization
//   it subscribes to, from its first subscription there until it closes (refused with a
//   subscription error coded SOCKET_LIMIT_REACHED; the socket stays usable for its other
//   organizations). Counting every organization of the user instead would let one busy
//   organization use up a person's budget in all the others. A user's socket that follows
//   nothing yet is bounded by the per-user limit. All of these are per process: with
//   WEB_CONCURRENCY processes an organization may hold that many times as much;
// - keep-alive pings; a socket that misses a pong is dropped;
// - shutdown: close() stops upgrades and closes every socket with 1001 (clients reconnect to
//   another process or the restarted one, and resubscribe).

import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import { makeServer, CloseCode, type Context as WsContext } from "graphql-ws";
import { WebSocketServer, type WebSocket } from "ws";
import type pg from "pg";
import { GraphQLError, getOperationAST, type DocumentNode } from "postgraphile/graphql";
import { SafeError } from "postgraphile/grafast";
import { makeGraphQLWSConfig, type GrafservBase } from "postgraphile/grafserv";
import type { RealtimeConfig } from "../../core/config.ts";
import type { Logger } from "../../core/logger.ts";
import type { JwtSettings } from "../auth.ts";
import { ConnectionRefused, verifyConnection } from "./credentials.ts";
import { createListener, type Listener } from "./listener.ts";
import { createDeliveryReads, type DeliveryReads } from "./delivery.ts";
import { RealtimeHub } from "./hub.ts";
import { RealtimeSession, type OrganizationLimits } from "./session.ts";

export const GRAPHQL_PATH = "/graphql";

/** Close codes a client sees (graphql-ws clients do not retry 4401 or 4429). */
export const CLOSE = {
  unauthorized: CloseCode.Unauthorized, // 4401: bad, expired or revoked token
  tooManyConnections: 4429,
  goingAway: 1001, // shutdown: reconnect
} as const;

export interface RealtimeOptions {
  /** Direct URL (never through PgBouncer) for the LISTEN connection. */
  listenUrl: string;
  authPool: pg.Pool;
  ownerPool: pg.Pool;
  jwt: JwtSettings;
  limits: RealtimeConfig;
  /** Largest websocket message accepted, in bytes (the HTTP body limit). */
  maxMessageBytes: number;
  logger: Logger;
}

export interface RealtimeStats {
  connections: number;
  subscriptions: number;
  channels: number;
  delivered: number;
  /** Authorisation queries made for delivered events (one per event, whatever its subscribers). */
  authorizations: number;
  /** Pool transactions that read delivered events' payloads (one per event's batch of subscribers). */
  deliveryTransactions: number;
}

export interface Realtime {
  listener: Listener;
  /** The GraphQL context of an operation on a socket: its settings and its pub/sub. */
  contextFor(ws: { socket?: unknown }): {
    pgSettings: Record<string, string>;
    realtime?: RealtimeSession;
    realtimeWithPgClient?: DeliveryReads["withPgClient"];
  };
  /** Serves graphql-ws on the server's /graphql upgrades. */
  attach(serv: GrafservBase, httpServer: Server): void;
  stats(): RealtimeStats;
  /** Stops upgrades, closes every socket (1001), releases the LISTEN connection. */
  close(): Promise<void>;
}

interface SocketState {
  session: RealtimeSession | null;
  subscriptions: number;
  /** The organizations this socket counts in (see the budgets above). */
  organizations: Set<string>;
}

export function createRealtime(options: RealtimeOptions): Realtime {
  const { limits, logger } = options;
  const listener = createListener(options.listenUrl, logger);
  const sockets = new Map<WebSocket, SocketState>();
  const perPrincipal = new Map<string, number>();
  const perOrganization = new Map<string, number>();
  const hub = new RealtimeHub({ listener, ownerPool: options.ownerPool, logger });
  const reads = createDeliveryReads(options.authPool, limits.deliveryConnections);
  // The share of the process's sockets one organization may hold, whatever its plan says.
  const shareCap = Math.max(1, Math.floor((limits.maxConnections * limits.maxOrganizationSharePercent) / 100));
  const socketBudget = (plan: number | null | undefined) => Math.min(plan ?? limits.maxConnectionsPerOrganization, shareCap);
  const socketLimitMessage = (limit: number) => `Too many connections for this organization (limit ${limit}).`;
  const countIn = (state: SocketState, organizationId: string) => {
    state.organizations.add(organizationId);
    perOrganization.set(organizationId, (perOrganization.get(organizationId) ?? 0) + 1);
  };
  let delivered = 0;
  let closing = false;
  let detach: (() => void) | null = null;
  const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxMessageBytes });

  const closeSocket = (socket: WebSocket, code: number, reason: string) => {
    if (socket.readyState === socket.OPEN || socket.readyState === socket.CONNECTING) socket.close(code, reason);
  };

  const release = (state: SocketState) => {
    for (const organizationId of state.organizations) {
      const left = (perOrganization.get(organizationId) ?? 1) - 1;
      if (left <= 0) perOrganization.delete(organizationId);
      else perOrganization.set(organizationId, left);
    }
    state.organizations.clear();
    const principal = state.session?.principal;
    if (!principal) return;
    const left = (perPrincipal.get(principal) ?? 1) - 1;
    if (left <= 0) perPrincipal.delete(principal);
    else perPrincipal.set(principal, left);
  };

  function keepAlive(socket: WebSocket) {
    let alive = true;
    socket.on("pong", () => {
      alive = true;
    });
    const timer = setInterval(() => {
      if (!alive) {
        socket.terminate();
        return;
      }
      alive = false;
      socket.ping();
    }, limits.keepaliveMs);
    timer.unref();
    socket.once("close", () => clearInterval(timer));
  }

  function graphqlWs(serv: GrafservBase) {
    const base = makeGraphQLWSConfig(serv);
    type Extra = { socket: WebSocket; request: IncomingMessage };
    return makeServer<Record<string, unknown> | undefined, Extra>({
      ...(base as object),
      async onConnect(ctx: WsContext<Record<string, unknown> | undefined, Extra>) {
        const { socket } = ctx.extra;
        const state = sockets.get(socket);
        if (!state) return false;
        try {
          const credentials = await verifyConnection(ctx.connectionParams, options.jwt, options.ownerPool);
          const open = perPrincipal.get(credentials.principal) ?? 0;
          if (open >= limits.maxConnectionsPerUser) {
            closeSocket(socket, CLOSE.tooManyConnections, `Too many connections for this user (limit ${limits.maxConnectionsPerUser}).`);
            return false;
          }
          const keyOrganization = credentials.identity.apiKeyId !== undefined ? credentials.identity.organizationId : null;
          if (keyOrganization !== null) {
            const budget = socketBudget(credentials.maxOrganizationSockets);
            if ((perOrganization.get(keyOrganization) ?? 0) >= budget) {
              closeSocket(socket, CLOSE.tooManyConnections, `SOCKET_LIMIT_REACHED: ${socketLimitMessage(budget)}`);
              return false;
            }
          }
          if (socket.readyState !== socket.OPEN) return false;
          perPrincipal.set(credentials.principal, open + 1);
          if (keyOrganization !== null) countIn(state, keyOrganization);
          state.session = new RealtimeSession({
            credentials,
            authPool: options.authPool,
            hub,
            close: (code, reason) => closeSocket(socket, code, reason),
            admit: (organizationId: string, plan: OrganizationLimits) => {
              const counted = state.organizations.has(organizationId);
              const sockets = socketBudget(plan.maxSockets);
              if (!counted && (perOrganization.get(organizationId) ?? 0) >= sockets) {
                throw new SafeError(socketLimitMessage(sockets), { code: "SOCKET_LIMIT_REACHED" });
              }
              const subscriptions = plan.maxSubscriptions ?? limits.maxSubscriptionsPerOrganization;
              if (hub.subscriptionsOf(organizationId) >= subscriptions) {
                throw new SafeError(`Too many subscriptions for this organization (limit ${subscriptions}).`, {
                  code: "SUBSCRIPTION_LIMIT_REACHED",
                });
              }
              if (!counted) countIn(state, organizationId);
            },
            onDelivered: () => {
              delivered++;
            },
          });
          return true;
        } catch (error) {
          if (error instanceof ConnectionRefused) {
            closeSocket(socket, CLOSE.unauthorized, error.message);
            return false;
          }
          logger.error({ reason: (error as Error).message }, "realtime: connection_init failed");
          closeSocket(socket, CloseCode.InternalServerError, "Internal error.");
          return false;
        }
      },
      async onSubscribe(ctx, id, payload) {
        const state = sockets.get(ctx.extra.socket);
        if (!state?.session) return [new GraphQLError("Not authenticated.", { extensions: { code: "INVALID_TOKEN" } })];
        if (state.subscriptions >= limits.maxSubscriptionsPerConnection) {
          return [
            new GraphQLError(`Too many subscriptions on this connection (limit ${limits.maxSubscriptionsPerConnection}).`, {
              extensions: { code: "TOO_MANY_SUBSCRIPTIONS" },
            }),
          ];
        }
        // Take the place before awaiting: subscribe messages are handled concurrently.
        state.subscriptions++;
        let result: Awaited<ReturnType<NonNullable<typeof base.onSubscribe>>>;
        try {
          result = await base.onSubscribe!(ctx as any, id, payload);
        } catch (error) {
          state.subscriptions--;
          throw error;
        }
        if (!result || Array.isArray(result)) {
          state.subscriptions--;
          return result;
        }
        const args = result as { document: DocumentNode; operationName?: string | null };
        const operation = getOperationAST(args.document, args.operationName);
        if (operation?.operation !== "subscription") {
          state.subscriptions--;
          return [
            new GraphQLError("Only subscriptions are served over websockets; send queries and mutations over HTTP.", {
              extensions: { code: "SUBSCRIPTIONS_ONLY" },
            }),
          ];
        }
        return result;
      },
      // graphql-ws calls this for every operation onSubscribe let through, however it ends
      // (completed, failed, cancelled by the client, socket closed).
      async onComplete(ctx) {
        const state = sockets.get(ctx.extra.socket);
        if (state && state.subscriptions > 0) state.subscriptions--;
      },
    });
  }

  return {
    listener,
    contextFor(ws) {
      const session = sockets.get(ws.socket as WebSocket)?.session ?? null;
      // No session never reaches here (onSubscribe refuses first); anonymous as a safe default.
      if (!session) return { pgSettings: { role: "app_anonymous" } };
      return { pgSettings: session.pgSettings, realtime: session, realtimeWithPgClient: reads.withPgClient };
    },
    attach(serv, httpServer) {
      const server = graphqlWs(serv);
      const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
        const path = (req.url ?? "").split("?")[0];
        if (path !== GRAPHQL_PATH) return socket.destroy();
        if (closing || sockets.size >= limits.maxConnections) {
          socket.end("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
          return;
        }
        wss.handleUpgrade(req, socket, head, (ws) => {
          const state: SocketState = { session: null, subscriptions: 0, organizations: new Set() };
          sockets.set(ws, state);
          keepAlive(ws);
          ws.on("error", () => {});
          const closed = server.opened(
            {
              protocol: ws.protocol,
              // A message for a socket already closing is dropped (the client is gone).
              send: (data) =>
                new Promise<void>((resolve, reject) => {
                  if (ws.readyState !== ws.OPEN) return resolve();
                  ws.send(data, (error) => (error && ws.readyState === ws.OPEN ? reject(error) : resolve()));
                }),
              close: (code, reason) => closeSocket(ws, code ?? 1000, reason ?? ""),
              onMessage: (cb) =>
                ws.on("message", async (data) => {
                  try {
                    await cb(String(data));
                  } catch (error) {
                    logger.error({ reason: (error as Error).message }, "realtime: message failed");
                    closeSocket(ws, CloseCode.InternalServerError, "Internal error.");
                  }
                }),
            },
            { socket: ws, request: req },
          );
          ws.once("close", (code, reason) => {
            state.session?.disposed();
            release(state);
            sockets.delete(ws);
            void closed(code, String(reason));
          });
        });
      };
      httpServer.on("upgrade", onUpgrade);
      detach = () => httpServer.off("upgrade", onUpgrade);
    },
    stats() {
      let subscriptions = 0;
      for (const state of sockets.values()) subscriptions += state.subscriptions;
      return {
        connections: sockets.size,
        subscriptions,
        channels: listener.channels().length,
        delivered,
        authorizations: hub.authorizationQueries(),
        deliveryTransactions: reads.transactions(),
      };
    },
    async close() {
      closing = true;
      detach?.();
      const all = [...sockets.keys()];
      const gone = all.map((ws) => new Promise<void>((resolve) => (ws.readyState === ws.CLOSED ? resolve() : ws.once("close", () => resolve()))));
      for (const ws of all) closeSocket(ws, CLOSE.goingAway, "Server is shutting down; reconnect.");
      // A client that never answers the close frame is cut off.
      const cutoff = setTimeout(() => all.forEach((ws) => ws.terminate()), 2000);
      await Promise.all(gone);
      clearTimeout(cutoff);
      wss.close();
      await listener.release();
    },
  };
}
