// A real graphql-ws client over a real websocket (the `ws` package), and a subscription whose
// messages a test can wait for.

import { createClient, type Client, type ClientOptions } from "graphql-ws";
import WebSocket from "ws";
import type { TestUser } from "./fixtures.ts";
import { tokenFor } from "./server.ts";

export interface Closed {
  code: number;
  reason: string;
}

export interface RealtimeClient {
  client: Client;
  /** Every close event the client saw, in order. */
  closes: Closed[];
  /** Resolves at the next close (or the first, if it already happened). */
  closed(): Promise<Closed>;
  dispose(): Promise<void>;
}

export function wsUrl(httpUrl: string): string {
  return httpUrl.replace(/^http/, "ws") + "/graphql";
}

/** token: a JWT or API key string, a TestUser (a token is signed for them), or null for none. */
export function connect(
  httpUrl: string,
  token: string | TestUser | null,
  options: Partial<ClientOptions> = {},
): RealtimeClient {
  const closes: Closed[] = [];
  const waiting: ((closed: Closed) => void)[] = [];
  const bearer = token === null ? null : typeof token === "string" ? token : tokenFor(token);
  const client = createClient({
    url: wsUrl(httpUrl),
    webSocketImpl: WebSocket,
    lazy: false,
    retryAttempts: 0,
    connectionParams: bearer === null ? {} : { Authorization: `Bearer ${bearer}` },
    onNonLazyError: () => {},
    ...options,
    on: {
      closed: (event: any) => {
        const closed = { code: event?.code, reason: String(event?.reason ?? "") };
        closes.push(closed);
        for (const resolve of waiting.splice(0)) resolve(closed);
      },
      ...options.on,
    },
  });
  return {
    client,
    closes,
    closed: () => (closes.length > 0 ? Promise.resolve(closes[closes.length - 1]) : new Promise((resolve) => waiting.push(resolve))),
    dispose: () => client.dispose() as Promise<void>,
  };
}

export interface Subscription<T = any> {
  messages: { data?: T; errors?: { message: string; extensions?: { code?: string } }[] }[];
  completed: boolean;
  error: unknown;
  /** Waits until `count` messages have arrived (or fails after timeoutMs). */
  waitForCount(count: number, timeoutMs?: number): Promise<void>;
  /** Waits for a message matching `predicate`. */
  waitFor(predicate: (message: { data?: T; errors?: any[] }) => boolean, timeoutMs?: number): Promise<{ data?: T; errors?: any[] }>;
  /** Waits until the subscription completes or errors. */
  ended(timeoutMs?: number): Promise<void>;
  unsubscribe(): void;
}

export function subscribe<T = any>(client: RealtimeClient, query: string, variables: Record<string, unknown> = {}): Subscription<T> {
  const listeners = new Set<() => void>();
  const notify = () => listeners.forEach((listener) => listener());
  const sub: Subscription<T> = {
    messages: [],
    completed: false,
    error: undefined,
    waitForCount: (count, timeoutMs = 10_000) => until(() => sub.messages.length >= count, timeoutMs, `${count} message(s)`).then(() => {}),
    waitFor: async (predicate, timeoutMs = 10_000) => {
      await until(() => sub.messages.some(predicate), timeoutMs, "a matching message");
      return sub.messages.find(predicate)!;
    },
    ended: (timeoutMs = 10_000) => until(() => sub.completed || sub.error !== undefined, timeoutMs, "the end of the subscription").then(() => {}),
    unsubscribe: () => unsubscribe(),
  };
  function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (condition()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!condition()) return;
        clearTimeout(timer);
        listeners.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(new Error(`timed out waiting for ${what}; got ${JSON.stringify(sub.messages)}, error ${String(sub.error)}`));
      }, timeoutMs);
      listeners.add(check);
    });
  }
  const unsubscribe = client.client.subscribe<T>(
    { query, variables },
    {
      next: (message) => {
        sub.messages.push(message as any);
        notify();
      },
      error: (error) => {
        sub.error = error ?? new Error("error");
        notify();
      },
      complete: () => {
        sub.completed = true;
        notify();
      },
    },
  );
  return sub;
}

/** Resolves after ms; for "nothing arrives" checks, which wait a fixed, generous time. */
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** SQL-level: a direct session LISTENing on channels, collecting the payloads (parsed). */
export async function listenInSql(connectionString: string, channels: string[]) {
  const pg = (await import("pg")).default;
  const client = new pg.Client({ connectionString });
  await client.connect();
  const received: { channel: string; payload: any }[] = [];
  client.on("notification", (n) => received.push({ channel: n.channel, payload: JSON.parse(n.payload ?? "null") }));
  for (const channel of channels) await client.query(`listen ${client.escapeIdentifier(channel)}`);
  return {
    received,
    /** Notifications arrive after commit, asynchronously: a round trip on this session flushes them. */
    async flush() {
      await client.query("select 1");
      await sleep(50);
      await client.query("select 1");
      return received;
    },
    clear: () => received.splice(0),
    end: () => client.end(),
  };
}

/**
 * The sockets one test file opens: `connect` opens and remembers one; `closeAll` closes every
 * socket still open and then waits (up to 2 s) until `settled` says the server saw them go.
 */
export function trackedSockets(url: () => string) {
  const open: RealtimeClient[] = [];
  return {
    open,
    connect(token: string | TestUser | null, options: Partial<ClientOptions> = {}): RealtimeClient {
      const client = connect(url(), token, options);
      open.push(client);
      return client;
    },
    async closeAll(settled: () => boolean = () => true): Promise<void> {
      await Promise.all(open.splice(0).map((client) => client.dispose()));
      for (let i = 0; i < 100 && !settled(); i++) await sleep(20);
    },
  };
}
