// One noisy-neighbour attack of bench:fairness. An attack is a file in this folder exporting an
// Attack, listed in ./index.ts. It runs in a process of its own (./attack-child.ts), so that its
// load generator does not share an event loop with the witness: prepare() (optional) sets up what
// it needs before the witness's resting measurement, start() starts its senders and keeps them
// going until stop() is called while the harness measures the witness, cleanup() (optional)
// undoes what prepare() made that would otherwise accumulate (API keys). Keep an attack within
// its own budget of senders and a few seconds (it shares 2 cores with the server, PostgreSQL and
// the witness) and make each request end on its own (no request left hanging after stop()).
// Everything an attack sends is an allowed request of the attacking tenant (or of anonymous
// senders).

import type { BenchMember } from "../lib/sql.ts";

export interface AttackContext {
  /** http://127.0.0.1:<port> of the server under test. */
  baseUrl: string;
  /** The /graphql URL. */
  graphqlUrl: URL;
  /** The attacking tenant: owner of organization 1, which holds the data set's generations. */
  attacker: BenchMember;
  attackerToken: string;
  /** The witness's sign-in email (the attacks on accounts aim at it); never its password. */
  witnessEmail: string;
  /** STRIPE_WEBHOOK_SECRET the server runs with. */
  webhookSecret: string;
}

/** What crosses the IPC channel to the attack's process (a URL does not). */
export type SerializedContext = Omit<AttackContext, "graphqlUrl">;

export interface RunningAttack {
  /** Stops sending; resolves once every request in flight has ended. Returns answers by HTTP status (or outcome). */
  stop(): Promise<Record<string, number>>;
  /** One line on what the attack achieved (sockets held, bytes received, …), read after stop(). */
  summary?(): string;
}

/**
 * How the witness is measured for this attack, when not by the default probe (one
 * `{ currentUser { id } }` at a time). Runs in the harness's process.
 */
export interface WitnessProbe {
  /** What one probe is (a table footnote). */
  description: string;
  /** Once, before the resting measurement. */
  prepare?(context: AttackContext): Promise<void>;
  /** One request; throws (with a short reason) when it was not answered as it should be. */
  once(context: AttackContext): Promise<void>;
  /** Wait between probes, ms (a probe counted by a rate limit must stay under it). */
  paceMs?: number;
}

export interface Attack {
  /** Short name (a table row). */
  name: string;
  /** One line: what the attacker does. */
  description: string;
  prepare?(context: AttackContext): Promise<void>;
  start(context: AttackContext): Promise<RunningAttack> | RunningAttack;
  cleanup?(context: AttackContext): Promise<void>;
  witness?: WitnessProbe;
}

/** `senders` loops each running `send` back to back until stopped; counts outcomes (status or error kind). */
export function loops(senders: number, send: (sender: number, i: number) => Promise<string>): RunningAttack {
  let stopped = false;
  const outcomes: Record<string, number> = {};
  let i = 0;
  const running = Array.from({ length: senders }, async (_, sender) => {
    while (!stopped) {
      let outcome: string;
      try {
        outcome = await send(sender, i++);
      } catch (error) {
        outcome = (error as NodeJS.ErrnoException).code ?? "error";
        // a refused connection must not spin
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      if (outcome === "") {
        // nothing sent: the attack's bounded work is done
        await new Promise((resolve) => setTimeout(resolve, 20));
        continue;
      }
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    }
  });
  return {
    async stop() {
      stopped = true;
      await Promise.all(running);
      return outcomes;
    },
  };
}
