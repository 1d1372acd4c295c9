// The fan-out of one process (issue 25, A5). Each channel (one kind of change in one
// organization) is read once, however many subscriptions of this process follow it, and each
// event is authorised ONCE for all of them: one query (app_private.realtime_deliveries) answers,
// for every distinct subscriber (a user's session or an API key), whether it may still receive
// the organization's events. Before, every subscriber asked on its own: one pool transaction per
// subscriber per event, which let one tenant's subscriptions starve everyone's requests.
// - 'ok': the event is passed on; 'not_member' (removed, organization deleted, key of another
//   organization): that subscription completes; 'session_ended' (logout, idle or expired
//   session, revoked or expired key): the socket closes with 4401.
// - Events of a channel are handled one after the other, so every subscriber receives them in
//   commit order (PostgreSQL delivers notifications in commit order).
// - A generation whose notification was too large to carry its row is read once here for
//   everyone (app_private.realtime_current_row), within the subscribed organization.

import type pg from "pg";
import type { Logger } from "../../core/logger.ts";
import type { Listener } from "./listener.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export type DeliveryStatus = "ok" | "session_ended" | "not_member";

/** One subscription, as the hub sees it (made by session.ts). */
export interface HubSubscriber {
  principal: string;
  /** {p, u, s} for a user's session, {p, k} for an API key: what realtime_deliveries() takes. */
  principalSpec: Record<string, string>;
  projectId: string | null;
  /** True when the token has expired (the socket is being closed). */
  expired(): boolean;
  push(event: Record<string, unknown>): void;
  /** The subscriber may no longer receive this organization's events (status or failure). */
  stop(status: DeliveryStatus | "failed"): void;
}

interface Channel {
  kind: string;
  organizationId: string;
  subscribers: Set<HubSubscriber>;
  source: AsyncIterableIterator<string>;
}

export interface HubOptions {
  listener: Listener;
  ownerPool: pg.Pool;
  logger: Logger;
}

export class RealtimeHub {
  private readonly channels = new Map<string, Channel>();
  private authorizations = 0;
  private readonly options: HubOptions;

  constructor(options: HubOptions) {
    this.options = options;
  }

  /** Authorisation queries made since start (one per event with subscribers; metrics, tests). */
  authorizationQueries(): number {
    return this.authorizations;
  }

  /** Subscriptions following each organization in this process. */
  subscriptionsOf(organizationId: string): number {
    let count = 0;
    for (const channel of this.channels.values()) if (channel.organizationId === organizationId) count += channel.subscribers.size;
    return count;
  }

  subscriptions(): number {
    let count = 0;
    for (const channel of this.channels.values()) count += channel.subscribers.size;
    return count;
  }

  /** Follows `channel`; resolves once its LISTEN is in place. Returns the function that leaves. */
  async join(channelName: string, kind: string, organizationId: string, subscriber: HubSubscriber): Promise<() => void> {
    let channel = this.channels.get(channelName);
    if (!channel) {
      const source = this.options.listener.pgSubscriber.subscribe(channelName) as AsyncIterableIterator<string>;
      channel = { kind, organizationId, subscribers: new Set(), source };
      this.channels.set(channelName, channel);
      void this.pump(channelName, channel);
    }
    channel.subscribers.add(subscriber);
    const joined = channel;
    const leave = () => {
      if (!joined.subscribers.delete(subscriber)) return;
      if (joined.subscribers.size === 0 && this.channels.get(channelName) === joined) {
        this.channels.delete(channelName);
        void joined.source.return?.();
      }
    };
    try {
      await this.options.listener.whenListening(channelName);
    } catch (error) {
      leave();
      throw error;
    }
    return leave;
  }

  private async pump(name: string, channel: Channel) {
    try {
      for (;;) {
        const item = await channel.source.next();
        if (item.done) break;
        await this.handle(channel, item.value);
      }
    } catch (error) {
      this.options.logger.warn({ reason: (error as Error).message }, "realtime: channel failed");
    }
    // The LISTEN connection was lost (PgSubscriber ends its iterators) or everyone left: every
    // subscription still here ends, and its client subscribes again.
    if (this.channels.get(name) === channel) this.channels.delete(name);
    for (const subscriber of channel.subscribers) subscriber.stop("failed");
    channel.subscribers.clear();
  }

  private async handle(channel: Channel, payload: string) {
    let event: Record<string, unknown>;
    try {
      event = JSON.parse(payload);
    } catch {
      return; // not ours: channels are app-named, but anyone connected may NOTIFY anything
    }
    if (typeof event !== "object" || event === null || Array.isArray(event)) return;
    const recipients = [...channel.subscribers].filter((s) => !s.projectId || event.project_id === s.projectId);
    const live = recipients.filter((s) => {
      if (!s.expired()) return true;
      s.stop("session_ended");
      return false;
    });
    if (live.length === 0) return;
    const principals = new Map<string, Record<string, string>>();
    for (const s of live) principals.set(s.principal, s.principalSpec);
    const { ownerPool, logger } = this.options;
    let statuses: Map<string, DeliveryStatus>;
    try {
      this.authorizations++;
      const { rows } = await ownerPool.query<{ principal: string; status: DeliveryStatus }>(
        "select principal, status from app_private.realtime_deliveries($1, $2::jsonb)",
        [channel.organizationId, JSON.stringify([...principals.values()])],
      );
      statuses = new Map(rows.map((row) => [row.principal, row.status]));
      if (channel.kind === "generations" && typeof event.row !== "string" && [...statuses.values()].includes("ok")) {
        const id = typeof event.id === "string" && UUID.test(event.id) ? event.id : null;
        const read = id
          ? await ownerPool.query<{ row: string | null }>("select app_private.realtime_current_row('generations', $1, $2) as row", [channel.organizationId, id])
          : null;
        event = { ...event, row: read?.rows[0]?.row ?? null };
      }
    } catch (error) {
      logger.warn({ reason: (error as Error).message }, "realtime: delivery check failed");
      for (const s of live) s.stop("failed");
      return;
    }
    const delivered = { ...event, organization_id: channel.organizationId };
    for (const s of live) {
      const status = statuses.get(s.principal) ?? "session_ended";
      if (status === "ok") s.push(delivered);
      else s.stop(status);
    }
  }
}
