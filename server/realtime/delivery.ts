// How the subscription payloads of delivered events are read (issue 25, A5). PostGraphile reads
// each subscriber's payload under that subscriber's settings; through the request path
// (server/request-transaction.ts) that is one pool transaction per subscriber per event, so one
// organization's event with 1,000 subscribers took 1,000 connections' turns from every other
// tenant. Here the reads that arrive together (those of one event: every subscriber's
// execution starts in the same turn of the event loop, see hub.ts) share ONE transaction on one
// connection: each read first sets its own settings (the claims of the reader before it are
// cleared) and runs start_request(), exactly as a request would (RLS decides what each
// subscriber sees), and at most `connections` such transactions are open at once, whatever the
// number of subscribers. A transaction takes at most BATCH reads; the rest wait for the next
// one. A read that fails (an ended session, a statement timeout) rolls the transaction back and
// the next read starts a new one: no savepoints, so no subtransactions pile up.

import type pg from "pg";
import { escapeLiteral } from "pg";
import * as pgAdaptor from "postgraphile/adaptors/pg";

type WithPgClient = ReturnType<typeof pgAdaptor.createWithPgClient>;

const BATCH = 250;
const $$configured = Symbol("tenantbase:delivery-configured");

interface Read {
  settings: Record<string, string>;
  callback: (client: any) => any;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

export interface DeliveryReads {
  withPgClient: WithPgClient;
  /** Pool transactions opened for event reads since start (metrics, tests). */
  transactions(): number;
}

/** Settings keys a reader without them must not inherit from the reader before it. */
const CLAIM = /^(jwt\.claims\.|tenantbase\.)/;

export function createDeliveryReads(pool: pg.Pool, connections: number): DeliveryReads {
  const queue: Read[] = [];
  let running = 0;
  let scheduled = false;
  let transactions = 0;

  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    // After the current turn: every subscriber of the event has asked by then.
    setImmediate(() => {
      scheduled = false;
      pump();
    });
  };

  const pump = () => {
    while (running < connections && queue.length > 0) {
      const batch = queue.splice(0, BATCH);
      running++;
      void run(batch).finally(() => {
        running--;
        if (queue.length > 0) schedule();
      });
    }
  };

  async function run(batch: Read[]) {
    let next = 0;
    let client: (pg.PoolClient & { [$$configured]?: true }) | null = null;
    let broken: Error | undefined;
    try {
      client = await pool.connect();
      transactions++;
      if (!client[$$configured]) {
        client[$$configured] = true;
        await client.query("set jit_optimize_above_cost = -1");
      }
      await client.query("begin");
      const claims = new Set(batch.flatMap((read) => Object.keys(read.settings).filter((key) => CLAIM.test(key))));
      for (; next < batch.length; next++) {
        const read = batch[next];
        if (!read.settings.role) {
          read.reject(new Error("A realtime read without a role"));
          continue;
        }
        const entries: [string, string][] = Object.entries(read.settings).filter((entry): entry is [string, string] => entry[1] != null);
        for (const key of claims) if (!(key in read.settings)) entries.push([key, ""]);
        try {
          await client.query(
            "select set_config(el->>0, el->>1, true) from json_array_elements(" +
              escapeLiteral(JSON.stringify(entries)) +
              "::json) el; select app_hidden.start_request()",
          );
          read.resolve(await pgAdaptor.makeWithPgClientViaPgClientAlreadyInTransaction(client, true)(null, read.callback));
        } catch (error) {
          read.reject(error);
          await client.query("rollback; begin");
        }
      }
      await client.query("commit");
    } catch (error) {
      broken = error as Error;
      if (client) await client.query("rollback").catch(() => {});
      for (; next < batch.length; next++) batch[next].reject(error);
    } finally {
      client?.release(broken);
    }
  }

  const withPgClient = ((pgSettings: Record<string, string> | null, callback: (client: any) => any) =>
    new Promise((resolve, reject) => {
      queue.push({ settings: pgSettings ?? {}, callback, resolve, reject });
      schedule();
    })) as WithPgClient;
  withPgClient.release = () => {};

  return { withPgClient, transactions: () => transactions };
}
