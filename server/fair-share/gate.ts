// The fair-share gate in front of /graphql (wired in server/app.ts after the auth middleware,
// before PostGraphile): a request waits here, holding nothing, until its tenant's turn, and only
// then goes on to take a pool connection. Who counts as whom:
//
//   signed-in user (JWT)   scope user:<id>                      queue user:<id>
//   API key                scopes key:<id> and org:<org id>      queue org:<org id>
//   anonymous              scopes addr:<client address> and      queue addr:<client address>
//                          anonymous (all anonymous callers)
//
// (a user's organization is only known inside SQL, so a user's requests are counted per user).
// Limits and the queue are per server process (core/config.ts fairShareConfig). Refused:
// HTTP 429, Retry-After, {"errors":[{"message":…,"extensions":{"code":"RATE_LIMITED","retryAfter":N}}]}.

import type { Request, RequestHandler, Response } from "express";
import type pg from "pg";
import client from "prom-client";
import type { FairShareConfig } from "../../core/config.ts";
import { normalAddress } from "../client-origin.ts";
import { FairShareScheduler, RateLimitedError, type Scope } from "./scheduler.ts";
import { planLimits } from "./plan-limits.ts";

export interface FairShareGate {
  middleware: RequestHandler;
  scheduler: FairShareScheduler;
}

export function sendRateLimited(res: Response, message: string, retryAfterSeconds: number): void {
  res
    .status(429)
    .set("Retry-After", String(retryAfterSeconds))
    .json({ errors: [{ message, extensions: { code: "RATE_LIMITED", retryAfter: retryAfterSeconds } }] });
}

/** The tenant a request waits as, and the scopes it counts against. */
export async function tenantOf(
  req: Request,
  config: FairShareConfig,
  organizationLimit: (organizationId: string) => Promise<number>,
): Promise<{ tenant: string; scopes: Scope[] }> {
  const identity = req.identity;
  if (identity?.apiKeyId !== undefined) {
    const org = `org:${identity.organizationId}`;
    return {
      tenant: org,
      scopes: [
        { key: `key:${identity.apiKeyId}`, limit: config.maxInFlightPerApiKey },
        { key: org, limit: await organizationLimit(identity.organizationId) },
      ],
    };
  }
  if (identity?.userId !== undefined) {
    const user = `user:${identity.userId}`;
    return { tenant: user, scopes: [{ key: user, limit: config.maxInFlightPerUser }] };
  }
  // Anonymous requests also share one budget, whatever their addresses: two senders are enough
  // to matter on a 2-core machine, and addresses are cheap.
  const address = `addr:${normalAddress(req.ip) ?? "unknown"}`;
  return {
    tenant: address,
    scopes: [
      { key: address, limit: config.maxInFlightPerAddress },
      { key: "anonymous", limit: config.maxInFlightAnonymous },
    ],
  };
}

export function fairShareGate(options: {
  config: FairShareConfig;
  ownerPool: pg.Pool;
  /** The request pool's size: the total in flight when config.maxInFlight is null. */
  poolSize: number;
  registry: client.Registry;
}): FairShareGate {
  const { config } = options;
  const scheduler = new FairShareScheduler({
    maxInFlight: config.maxInFlight ?? options.poolSize,
    maxQueuedPerTenant: config.maxQueuedPerTenant,
    maxQueued: config.maxQueued,
    maxWaitMs: config.maxWaitMs,
  });
  const organizationLimit = planLimits(options.ownerPool, config.maxInFlightPerOrganization);

  const admitted = new client.Counter({
    name: "tenantbase_fair_share_admitted_total",
    help: "GraphQL requests let through the fair-share gate, at once or after waiting their turn",
    labelNames: ["how"] as const,
    registers: [options.registry],
  });
  const refused = new client.Counter({
    name: "tenantbase_fair_share_refused_total",
    help: "GraphQL requests refused with RATE_LIMITED by the fair-share gate, by reason (queue_full, wait_timeout)",
    labelNames: ["reason"] as const,
    registers: [options.registry],
  });
  new client.Gauge({
    name: "tenantbase_fair_share_requests",
    help: "GraphQL requests in this process by state (in_flight, queued) and tenants with a queue",
    labelNames: ["state"] as const,
    registers: [options.registry],
    collect() {
      const stats = scheduler.stats();
      this.set({ state: "in_flight" }, stats.inFlight);
      this.set({ state: "queued" }, stats.queued);
      this.set({ state: "tenants_waiting" }, stats.tenantsWaiting);
    },
  });

  const middleware: RequestHandler = async (req, res, next) => {
    if (!config.enabled || req.method === "OPTIONS") return next();
    let tenant: string;
    let scopes: Scope[];
    try {
      ({ tenant, scopes } = await tenantOf(req, config, organizationLimit));
    } catch (error) {
      return next(error);
    }
    // A client that hangs up while waiting leaves the queue.
    const gone = new AbortController();
    const onClose = () => gone.abort(new Error("client closed the connection"));
    res.once("close", onClose);
    let release = scheduler.tryAcquire(tenant, scopes);
    const immediate = release !== null;
    try {
      release ??= await scheduler.acquire(tenant, scopes, gone.signal);
    } catch (error) {
      res.off("close", onClose);
      if (error instanceof RateLimitedError) {
        refused.inc({ reason: error.reason });
        return sendRateLimited(res, error.message, error.retryAfterSeconds);
      }
      return; // the client left while waiting: nobody to answer
    }
    res.off("close", onClose);
    if (res.destroyed || req.socket.destroyed) {
      release();
      return;
    }
    admitted.inc({ how: immediate ? "at_once" : "after_wait" });
    res.once("close", release);
    // The request runs in the next turn of the event loop, not in this one: a request that needs
    // no database (a big anonymous document) is parsed, planned and answered in one synchronous
    // stretch, and 32 of them read in one turn ran back to back while every other client's
    // socket (and every database reply) waited for the turn to end (bench:fairness, anonymous
    // flood: the witness's one request took 34 s). Deferred, a turn runs at most the admitted
    // requests, which the limits above bound per tenant, before I/O is served again.
    setImmediate(next);
  };
  return { middleware, scheduler };
}
