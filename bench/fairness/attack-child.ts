// The process an attack of bench:fairness runs in (forked by bench/fairness.ts through
// bench/lib/ipc-child.ts): prepare, start, stop, cleanup on request, one attack per process.

import { serveIpc } from "../lib/ipc-child.ts";
import { ATTACKS } from "./index.ts";
import type { AttackContext, RunningAttack, SerializedContext } from "./attack.ts";

let context: AttackContext;
let running: RunningAttack | undefined;
const attack = () => {
  const found = ATTACKS.find((a) => a.name === process.env.BENCH_ATTACK);
  if (!found) throw new Error(`no attack named ${process.env.BENCH_ATTACK}`);
  return found;
};

serveIpc({
  async prepare(m: { context: SerializedContext }) {
    context = { ...m.context, graphqlUrl: new URL("/graphql", m.context.baseUrl) };
    await attack().prepare?.(context);
  },
  async start() {
    running = await attack().start(context);
  },
  async stop() {
    const outcomes = (await running?.stop()) ?? {};
    return { outcomes, summary: running?.summary?.() ?? "" };
  },
  async cleanup() {
    await attack().cleanup?.(context);
  },
});
