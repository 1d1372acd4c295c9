// The one LISTEN connection of this process: PostGraphile's own PgSubscriber (what makePgService
// builds with `pubsub: true`), given a pool of its own on a direct URL. LISTEN is session state:
// through PgBouncer in transaction mode it would sit on a server connection handed to other
// clients and notifications would be lost, so this pool never goes through the pooler.
//
// PgSubscriber issues LISTEN in the background after subscribe() returns. A subscription is
// only acknowledged once its LISTEN has run (whenListening), so that everything committed after
// a subscriber got its first message is delivered: the client class below sees each LISTEN and
// UNLISTEN complete on the connection.

import pg from "pg";
import { PgSubscriber } from "postgraphile/adaptors/pg";
import type { Logger } from "../../core/logger.ts";

const LISTEN = /^(UN)?LISTEN "((?:[^"]|"")+)"$/;

export interface Listener {
  pgSubscriber: PgSubscriber;
  /** Resolves once `channel` is being listened to; rejects after timeoutMs. */
  whenListening(channel: string, timeoutMs?: number): Promise<void>;
  /** Channels LISTENed to right now. */
  channels(): string[];
  release(): Promise<void>;
}

export function createListener(connectionString: string, logger: Logger): Listener {
  const active = new Set<string>();
  const waiters = new Map<string, Set<() => void>>();

  const settle = (channel: string) => {
    active.add(channel);
    for (const resolve of waiters.get(channel) ?? []) resolve();
    waiters.delete(channel);
  };

  class ObservedClient extends pg.Client {
    constructor(config?: string | pg.ClientConfig) {
      super(config);
      // A lost connection loses its LISTENs (PgSubscriber ends every subscription then).
      this.on("end", () => active.clear());
    }
    query(...args: any[]): any {
      const result = (super.query as (...a: any[]) => any)(...args);
      const text = typeof args[0] === "string" ? args[0] : null;
      const match = text === null ? null : LISTEN.exec(text);
      if (match && result && typeof result.then === "function") {
        const channel = match[2].replace(/""/g, '"');
        result.then(
          () => (match[1] ? active.delete(channel) : settle(channel)),
          () => {},
        );
      }
      return result;
    }
  }

  const pool = new pg.Pool({ connectionString, max: 1, Client: ObservedClient as unknown as typeof pg.Client });
  pool.on("error", (error) => logger.warn({ reason: error.message }, "realtime: LISTEN connection lost"));
  const pgSubscriber = new PgSubscriber(pool);

  return {
    pgSubscriber,
    whenListening(channel, timeoutMs = 10_000) {
      if (active.has(channel)) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const done = () => {
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.get(channel)?.delete(done);
          reject(new Error("LISTEN did not complete in time"));
        }, timeoutMs);
        timer.unref();
        if (!waiters.has(channel)) waiters.set(channel, new Set());
        waiters.get(channel)!.add(done);
      });
    },
    channels: () => [...active],
    async release() {
      pgSubscriber.release();
      // release() UNLISTENs and returns the client in the background; let it, then close.
      await new Promise((resolve) => setTimeout(resolve, 50));
      // Bounded: a LISTEN connection stuck reconnecting to a dead database must not hold shutdown.
      await Promise.race([pool.end().catch(() => {}), new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
    },
  };
}
