// Issue 25, finding 4: the attacker opens as many websockets as it can with its API keys (110
// keys, each allowed 10 sockets: 1,100 tries, past the organization's socket budget) and holds
// them while the witness is measured. Sockets are opened 50 at a time.

import type WebSocket from "ws";
import type { Attack } from "./attack.ts";
import { count, createKeys, openSocket, revokeKeys } from "./realtime-client.ts";

const KEYS = 110;
const PER_KEY = 10;
let keys: { id: string; secret: string }[] = [];

export const sockets: Attack = {
  name: "websockets (A4)",
  description: `${KEYS} API keys × ${PER_KEY} websockets each, opened 50 at a time and held`,
  async prepare(context) {
    keys = await createKeys(context, KEYS, "sockets");
  },
  start(context) {
    const outcomes: Record<string, number> = {};
    const held: WebSocket[] = [];
    let stopped = false;
    let next = 0;
    const opening = Promise.all(
      Array.from({ length: 50 }, async () => {
        while (!stopped && next < KEYS * PER_KEY) {
          const i = next++;
          const socket = await openSocket(context.baseUrl, keys[i % KEYS].secret);
          count(outcomes, socket.outcome);
          if (socket.outcome === "ack") {
            if (stopped) socket.ws.terminate();
            else held.push(socket.ws);
          }
        }
      }),
    );
    let heldAtStop = 0;
    return {
      async stop() {
        stopped = true;
        await opening;
        heldAtStop = held.filter((ws) => ws.readyState === ws.OPEN).length;
        for (const ws of held) ws.terminate();
        return outcomes;
      },
      summary: () => `sockets open at the end: ${heldAtStop}`,
    };
  },
  async cleanup(context) {
    await revokeKeys(context, keys);
  },
};
