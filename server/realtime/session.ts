// One authenticated websocket, and the pub/sub that its subscriptions listen() to (PostGraphile
// puts it in the GraphQL context as `realtime`). Every decision is PostgreSQL's, asked as the
// subscriber (their role and claims, the settings of an HTTP request):
// - subscribing: app_hidden.realtime_subscribe authorises and names the channel (NOT_FOUND for an
//   organization the caller cannot see, exactly as a query would answer);
// - each event, before it is delivered: app_hidden.realtime_subscriber_status. A logged-out
//   session, an expired token or a revoked API key closes the socket (4401 with the reason); a
//   caller no longer in the organization gets nothing more: that subscription completes.
// Notifications carry ids only; the payload a subscriber receives is read by PostGraphile under
// the same settings, so RLS decides what it contains.

import pg from "pg";
import type { GrafastSubscriber } from "postgraphile/grafast";
import { withSettings } from "../../db/transaction.ts";
import { pgSettingsFor } from "../auth.ts";
import type { ConnectionCredentials } from "./credentials.ts";
import type { Listener } from "./listener.ts";

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

export type SubscriberStatus = "ok" | "session_ended" | "not_member";

export interface SessionOptions {
  credentials: ConnectionCredentials;
  authPool: pg.Pool;
  listener: Listener;
  /** Closes this session's socket (code 4401 for ended credentials). */
  close(code: number, reason: string): void;
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

  /** Asked before every event: may this subscriber still receive this organization's events? */
  async status(organizationId: string): Promise<SubscriberStatus> {
    if (this.expired()) {
      this.end(4401, "Token has expired.");
      return "session_ended";
    }
    // The hot path (once per subscriber per event): one round trip. A simple-protocol query of
    // several statements is one implicit transaction, so the settings are transaction-local
    // exactly as in withSettings(), and vanish when it ends. Values are escaped literals.
    const settings = Object.entries(this.pgSettings)
      .map(([key, value]) => `set_config(${pg.escapeLiteral(key)}, ${pg.escapeLiteral(value)}, true)`)
      .join(", ");
    const results = (await this.options.authPool.query(
      `select ${settings}; select app_hidden.realtime_subscriber_status(${pg.escapeLiteral(organizationId)}::uuid) as status`,
    )) as unknown as pg.QueryResult<{ status: SubscriberStatus }>[];
    const status = results[1].rows[0].status;
    if (status === "session_ended") this.end(4401, "Session has ended; sign in again.");
    return status;
  }

  async subscribe(topic: string): Promise<AsyncIterableIterator<RealtimeEvent>> {
    const request = decodeRequest(topic);
    if (this.expired()) this.end(4401, "Token has expired.");
    // Raises INVALID_TOKEN / NOT_FOUND (business errors: their code reaches the client).
    const channel = await withSettings(this.options.authPool, this.pgSettings, async (client) => {
      const { rows } = await client.query<{ channel: string }>(
        "select app_hidden.realtime_subscribe($1, $2, $3) as channel",
        [request.kind, request.organizationId, request.projectId ?? null],
      );
      return rows[0].channel;
    });
    const { listener } = this.options;
    const source = listener.pgSubscriber.subscribe(channel) as AsyncIterableIterator<string>;
    try {
      await listener.whenListening(channel);
    } catch (error) {
      await source.return?.();
      throw error;
    }
    return this.guard(source, request);
  }

  /** Passes on only the events this subscriber may still receive, checked one by one. */
  private guard(source: AsyncIterableIterator<string>, request: RealtimeRequest): AsyncIterableIterator<RealtimeEvent> {
    let finished = false;
    const finish = async (): Promise<IteratorResult<RealtimeEvent>> => {
      if (!finished) {
        finished = true;
        await source.return?.();
      }
      return { done: true, value: undefined };
    };
    const session = this;
    return {
      [Symbol.asyncIterator]() {
        return this;
      },
      async next(): Promise<IteratorResult<RealtimeEvent>> {
        while (!finished) {
          const item = await source.next();
          if (item.done) return finish();
          let event: Record<string, unknown>;
          try {
            event = JSON.parse(item.value);
          } catch {
            continue; // not ours: channels are app-named, but a superuser may NOTIFY anything
          }
          if (typeof event !== "object" || event === null || Array.isArray(event)) continue;
          if (request.projectId && event.project_id !== request.projectId) continue;
          const status = await session.status(request.organizationId);
          if (status !== "ok") return finish();
          if (finished) break;
          session.options.onDelivered?.();
          return { done: false, value: { ...event, organization_id: request.organizationId } };
        }
        return { done: true, value: undefined };
      },
      return: finish,
      async throw(error?: unknown) {
        await finish();
        throw error;
      },
    };
  }
}
