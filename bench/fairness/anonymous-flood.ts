// Two anonymous senders... times sixteen: 32 concurrent anonymous requests from one address, each
// a distinct ~20 KB document of aliased fields (parsed, validated and planned afresh: the
// document cache never hits), back to back.

import { post } from "../lib/http-client.ts";
import { loops, type Attack } from "./attack.ts";

function document(i: number): string {
  const fields = Array.from({ length: 400 }, (_, k) => `f${k}_${i}: __typename`).join(" ");
  return `query Anonymous${i} { ${fields} }`;
}

export const anonymousFlood: Attack = {
  name: "anonymous flood",
  description: "32 concurrent anonymous senders (one address), each a new 20 KB document of 400 aliased fields",
  start(context) {
    const headers = { "content-type": "application/json", accept: "application/json" };
    return loops(32, async (_sender, i) => String((await post(context.graphqlUrl, JSON.stringify({ query: document(i) }), headers)).status));
  },
};
