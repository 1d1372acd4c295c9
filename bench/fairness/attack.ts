// One noisy-neighbour attack of bench:fairness. An attack is a file in this folder exporting an
// Attack, listed in ./index.ts. It starts its senders in start() and keeps them going until
// stop() is called; the harness measures the witness tenant meanwhile. Keep an attack within
// its own budget of senders (it shares 2 cores with the server, PostgreSQL and the witness) and
// make each request end on its own (no request left hanging after stop()).

import type { BenchMember } from "../lib/sql.ts";

export interface AttackContext {
  /** http://127.0.0.1:<port> of the server under test. */
  baseUrl: string;
  /** The /graphql URL. */
  graphqlUrl: URL;
  /** The attacking tenant: owner of organization 1, which holds the data set's generations. */
  attacker: BenchMember;
  attackerToken: string;
  /** STRIPE_WEBHOOK_SECRET the server runs with. */
  webhookSecret: string;
}

export interface RunningAttack {
  /** Stops sending; resolves once every request in flight has ended. Returns answers by HTTP status. */
  stop(): Promise<Record<string, number>>;
}

export interface Attack {
  /** Short name (a table row). */
  name: string;
  /** One line: what the attacker does. */
  description: string;
  start(context: AttackContext): Promise<RunningAttack> | RunningAttack;
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
