// Issue 25, finding 5: the attacker subscribes to its own organization's credit events up to its
// budget (3 API keys × 10 sockets × 20 subscriptions = 600 tries, past the organization's
// subscription budget) and then loops reserveCredits/releaseCredits (2 senders, its own user):
// every reserve and every release is an event fanned out to all its subscriptions.

import type WebSocket from "ws";
import { loops, type Attack, type RunningAttack } from "./attack.ts";
import { graphql } from "./graphql.ts";
import { count, createKeys, openSocket, revokeKeys } from "./realtime-client.ts";

const KEYS = 3;
const SOCKETS_PER_KEY = 10;
const SUBSCRIPTIONS_PER_SOCKET = 20;
let keys: { id: string; secret: string }[] = [];

const SUBSCRIPTION = `subscription S($org: UUID!) { creditAccountUpdated(organizationId: $org) { initial creditAccount { available reserved } } }`;
const RESERVE = `mutation R($org: UUID!, $key: String!) { reserveCredits(input: { organizationId: $org, amount: "1", idempotencyKey: $key }) { creditReservation { id } } }`;
const RELEASE = `mutation L($id: UUID!) { releaseCredits(input: { reservationId: $id }) { clientMutationId } }`;

export const fanout: Attack = {
  name: "realtime fan-out (A5)",
  description: "credit-event subscriptions up to the budget, then reserve/release in a loop (2 senders)",
  async prepare(context) {
    keys = await createKeys(context, KEYS, "fanout");
  },
  async start(context) {
    const outcomes: Record<string, number> = {};
    const sockets: WebSocket[] = [];
    let deliveries = 0;
    let active = 0;
    // open the sockets and subscribe; resolve when every subscription has its first answer
    await Promise.all(
      Array.from({ length: KEYS * SOCKETS_PER_KEY }, async (_, s) => {
        const socket = await openSocket(context.baseUrl, keys[s % KEYS].secret);
        count(outcomes, `socket ${socket.outcome}`);
        if (socket.outcome !== "ack") return;
        sockets.push(socket.ws);
        const firstAnswers = new Map<string, () => void>();
        socket.ws.on("message", (data) => {
          const m = JSON.parse(String(data));
          // a refusal (SUBSCRIPTION_LIMIT_REACHED) arrives as a `next` carrying errors, then `complete`
          if (m.type === "next" && m.payload?.errors?.length) {
            count(outcomes, `subscribe ${m.payload.errors[0]?.extensions?.code ?? "error"}`);
          } else if (m.type === "next") {
            deliveries += 1;
            if (firstAnswers.has(m.id)) {
              active += 1;
              count(outcomes, "subscribed");
            }
          } else if (m.type === "error") {
            count(outcomes, `subscribe ${m.payload?.[0]?.extensions?.code ?? "error"}`);
          } else return;
          firstAnswers.get(m.id)?.();
          firstAnswers.delete(m.id);
        });
        await Promise.all(
          Array.from({ length: SUBSCRIPTIONS_PER_SOCKET }, (_, k) => {
            const id = `s${k}`;
            return new Promise<void>((resolve) => {
              const timer = setTimeout(() => {
                firstAnswers.delete(id);
                count(outcomes, "subscribe: no answer in 5 s");
                resolve();
              }, 5000);
              firstAnswers.set(id, () => {
                clearTimeout(timer);
                resolve();
              });
              socket.ws.send(JSON.stringify({ id, type: "subscribe", payload: { query: SUBSCRIPTION, variables: { org: context.attacker.organizationId } } }));
            });
          }),
        );
      }),
    );
    const run = `${process.pid}-${Date.now()}`;
    const writers: RunningAttack = loops(2, async (sender, i) => {
      const reserved = await graphql(context.graphqlUrl, RESERVE, { org: context.attacker.organizationId, key: `fairbench-${run}-${sender}-${i}` }, context.attackerToken);
      const id = reserved.data?.reserveCredits?.creditReservation?.id;
      if (!id) return `reserve ${reserved.outcome}`;
      return `reserve+release ${(await graphql(context.graphqlUrl, RELEASE, { id }, context.attackerToken)).outcome}`;
    });
    const deliveriesAtStart = deliveries;
    let summary = "";
    return {
      async stop() {
        const written = await writers.stop();
        // let the deliveries of the last events arrive before closing
        await new Promise((resolve) => setTimeout(resolve, 200));
        summary = `subscriptions active ${active}, messages delivered to the attacker during the attack ${deliveries - deliveriesAtStart}`;
        for (const ws of sockets) ws.terminate();
        return { ...outcomes, ...written };
      },
      summary: () => summary,
    };
  },
  async cleanup(context) {
    await revokeKeys(context, keys);
  },
};
