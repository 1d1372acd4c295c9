// One authenticated websocket, and the pub/sub that its subscriptions listen() to (PostGraphile
// puts it in the GraphQL context as `realtime`). Every decision is PostgreSQL's:
// - subscribing, asked as the subscriber (their role and claims, the settings of an HTTP
//   request): app_hidden.realtime_follow authorises, names the channel (NOT_FOUND for an
//   organization the caller cannot see, exactly as a query would answer) and gives the
//   organization's plan budgets, which the websocket server checks (websockets.ts);
// - each event, before it is delivered: the process's hub (hub.ts) asks once for every
//   subscriber of the channel. A logged-out session, an expired token or a revoked API key
//   closes the socket (4401 with the reason); a caller no longer in the organization gets
//   nothing more: that subscription completes.
// A generation's notification carries its row as the change left it (plugin.ts serves it); the
// rest of a payload is read by PostGraphile under the subscriber's settings, so RLS decides what
// it contains (those reads share one transaction per event: delivery.ts).

import type pg from "pg";
import { SafeError, type GrafastSubscriber } from "postgraphile/grafast";
import { withSettings } from "../../db/transaction.ts";
import { pgSettingsFor } from "../auth.ts";
import type { ConnectionCredentials } from "./credentials.ts";
import type { DeliveryStatus, HubSubscriber, RealtimeHub } from "./hub.ts";

export const REALTIME_KINDS = ["generations", "credits", "organization"] as const;
export type RealtimeKind = (typeof REALTIME_KINDS)[number];

/** What a subscription asks for: made by server/realtime/plugin.ts from validated arguments. */
export interface RealtimeRequest {
  kind: RealtimeKind;
  organizationId: string;
  projectId?: string | null;
}

/** One notification as delivered to the GraphQL plan: the ids it carried, plus the organization. */
export type RealtimeEvent = Record<string, unknown> & { organization_id: string };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The topic string listen() passes to subscribe(): a request, re-validated on the way in. */
export function encodeRequest(request: RealtimeRequest): string {
  return JSON.stringify({ kind: request.kind, organizationId: request.organizationId, projectId: request.projectId ?? null });
}

function decodeRequest(topic: unknown): RealtimeRequest {
  const parsed = typeof topic === "string" ? (JSON.parse(topic) as Partial<RealtimeRequest>) : null;
  if (
    !parsed ||
    !REALTIME_KINDS.includes(parsed.kind as RealtimeKind) ||
    typeof parsed.organizationId !== "string" ||
    !UUID.test(parsed.organizationId) ||
    (parsed.projectId != null && (typeof parsed.projectId !== "string" || !UUID.test(parsed.projectId)))
  ) {
    throw new Error("Invalid realtime request");
  }
  return { kind: parsed.kind as RealtimeKind, organizationId: parsed.organizationId, projectId: parsed.projectId ?? null };
}

/** The plan budgets realtime_follow() read for an organization (null: the server's default). */
export interface OrganizationLimits {
  maxSockets: number | null;
  maxSubscriptions: number | null;
}

export interface SessionOptions {
  credentials: ConnectionCredentials;
  authPool: pg.Pool;
  hub: RealtimeHub;
  /** Closes this session's socket (code 4401 for ended credentials). */
  close(code: number, reason: string): void;
  /**
   * Called synchronously just before a subscription joins its channel: throws (a SafeError with
   * SOCKET_LIMIT_REACHED or SUBSCRIPTION_LIMIT_REACHED) when the organization's budget is spent.
   */
  admit(organizationId: string, limits: OrganizationLimits): void;
  /** Counts an event delivered (metrics, bench). */
  onDelivered?(): void;
}

export class RealtimeSession implements GrafastSubscriber<Record<string, RealtimeEvent>> {
  readonly pgSettings: Record<string, string>;
  private expiryTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly options: SessionOptions;

  constructor(options: SessionOptions) {
    this.options = options;
    this.pgSettings = pgSettingsFor(options.credentials.identity);
    this.scheduleExpiry();
  }

  get principal(): string {
    return this.options.credentials.principal;
  }

  /** The organization of an API key's socket (known at connection_init); null for a user. */
  get keyOrganizationId(): string | null {
    const { identity } = this.options.credentials;
    return identity.apiKeyId !== undefined ? identity.organizationId : null;
  }

  /** An expired JWT closes the socket even when no event comes (timers cap at ~24 days). */
  private scheduleExpiry() {
    const { expiresAt } = this.options.credentials;
    if (expiresAt === null || this.closed) return;
    const wait = expiresAt - Date.now();
    if (wait <= 0) return this.end(4401, "Token has expired.");
    this.expiryTimer = setTimeout(() => this.scheduleExpiry(), Math.min(wait, 2 ** 31 - 1));
    this.expiryTimer.unref();
  }

  end(code: number, reason: string) {
    if (this.closed) return;
    this.closed = true;
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.options.close(code, reason);
  }

  /** The socket went away: stop timers (subscriptions are returned by graphql-ws). */
  disposed() {
    this.closed = true;
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
  }

  private expired(): boolean {
    const { expiresAt } = this.options.credentials;
    return expiresAt !== null && expiresAt <= Date.now();
  }

  /** What app_private.realtime_deliveries() needs to answer for this subscriber. */
  private principalSpec(): Record<string, string> {
    const { identity, principal } = this.options.credentials;
    if (identity.apiKeyId !== undefined) return { p: principal, k: identity.apiKeyId };
    return { p: principal, u: identity.userId, s: identity.sessionId };
  }

  async subscribe(topic: string): Promise<AsyncIterableIterator<RealtimeEvent>> {
    const request = decodeRequest(topic);
    if (this.expired()) this.end(4401, "Token has expired.");
    // Raises INVALID_TOKEN / NOT_FOUND (business errors: their code reaches the client).
    const followed = await withSettings(this.options.authPool, this.pgSettings, async (client) => {
      const { rows } = await client.query<{ channel: string; max_sockets: number | null; max_subscriptions: number | null }>(
        "select channel, max_sockets, max_subscriptions from app_hidden.realtime_follow($1, $2, $3)",
        [request.kind, request.organizationId, request.projectId ?? null],
      );
      return rows[0];
    });
    const subscription = new Subscription(this, request);
    // No await between the budget check and joining: concurrent subscribes cannot both pass.
    this.options.admit(request.organizationId, { maxSockets: followed.max_sockets, maxSubscriptions: followed.max_subscriptions });
    subscription.leave = await this.options.hub.join(followed.channel, request.kind, request.organizationId, subscription);
    return subscription;
  }

  /** @internal used by Subscription */
  hubView() {
    return {
      principal: this.principal,
      principalSpec: this.principalSpec(),
      expired: () => {
        if (!this.expired()) return false;
        this.end(4401, "Token has expired.");
        return true;
      },
      sessionEnded: () => this.end(4401, "Session has ended; sign in again."),
      delivered: () => this.options.onDelivered?.(),
    };
  }
}

/** One subscription's queue of events, fed by the hub, read by grafast's listen(). */
class Subscription implements HubSubscriber, AsyncIterableIterator<RealtimeEvent> {
  readonly principal: string;
  readonly principalSpec: Record<string, string>;
  readonly projectId: string | null;
  leave: (() => void) | null = null;
  private readonly queue: RealtimeEvent[] = [];
  private waiting: { resolve(result: IteratorResult<RealtimeEvent>): void; reject(error: unknown): void } | null = null;
  private finished = false;
  /** Set when delivery was interrupted: the subscription ends with this error, not quietly. */
  private failure: Error | null = null;
  private readonly view: ReturnType<RealtimeSession["hubView"]>;

  constructor(session: RealtimeSession, request: RealtimeRequest) {
    this.view = session.hubView();
    this.principal = this.view.principal;
    this.principalSpec = this.view.principalSpec;
    this.projectId = request.projectId ?? null;
  }

  expired(): boolean {
    return this.view.expired();
  }

  push(event: Record<string, unknown>) {
    if (this.finished) return;
    this.view.delivered();
    const value = event as RealtimeEvent;
    if (this.waiting) {
      const { resolve } = this.waiting;
      this.waiting = null;
      resolve({ done: false, value });
    } else {
      this.queue.push(value);
    }
  }

  stop(status: DeliveryStatus | "failed") {
    if (status === "session_ended") this.view.sessionEnded();
    // The LISTEN connection was lost or the check failed: events may have been missed, so the
    // client is told (and subscribes again, getting a new first message).
    if (status === "failed" && !this.finished) {
      this.failure = new SafeError("Realtime delivery was interrupted; subscribe again.", { code: "DATABASE_UNAVAILABLE" });
    }
    void this.finish();
  }

  private async finish(): Promise<IteratorResult<RealtimeEvent>> {
    if (!this.finished) {
      this.finished = true;
      this.queue.length = 0;
      this.leave?.();
      this.leave = null;
      const waiting = this.waiting;
      this.waiting = null;
      if (waiting && this.failure) waiting.reject(this.failure);
      else waiting?.resolve({ done: true, value: undefined });
    }
    return { done: true, value: undefined };
  }

  [Symbol.asyncIterator]() {
    return this;
  }

  next(): Promise<IteratorResult<RealtimeEvent>> {
    if (this.queue.length > 0) return Promise.resolve({ done: false, value: this.queue.shift()! });
    if (this.finished) return this.failure ? Promise.reject(this.failure) : Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<RealtimeEvent>> {
    return this.finish();
  }

  async throw(error?: unknown): Promise<IteratorResult<RealtimeEvent>> {
    await this.finish();
    throw error;
  }
}
