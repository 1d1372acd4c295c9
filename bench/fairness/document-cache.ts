// Issue 25, finding 11: 500 unique anonymous documents of ~93 KB each (2 senders), then nothing:
// what the server's document cache keeps. The harness prints the server's RSS (from /proc) and
// heap (from /metrics) before and after every attack; for this one they are the finding.

import { post } from "../lib/http-client.ts";
import { loops, type Attack } from "./attack.ts";
import { answerOf, headersFor } from "./graphql.ts";

const DOCUMENTS = 500;
const TARGET_BYTES = 93_000;

/** A valid, cheap document made big by aliases of __typename (unique names: never seen before). */
export function bigDocument(tag: string): string {
  const fields: string[] = [];
  let length = 0;
  for (let k = 0; length < TARGET_BYTES; k++) {
    const field = `${tag}_${k}_${"p".repeat(1000)}: __typename`;
    fields.push(field);
    length += field.length + 1;
  }
  return `query D${tag} { ${fields.join(" ")} }`;
}

export const documentCache: Attack = {
  name: "document cache (A11)",
  description: `${DOCUMENTS} unique anonymous ~93 KB documents, 2 senders, then idle`,
  start(context) {
    const run = Date.now().toString(36);
    let sent = 0;
    return loops(2, async () => {
      if (sent >= DOCUMENTS) return "";
      const i = sent++;
      return answerOf(await post(context.graphqlUrl, JSON.stringify({ query: bigDocument(`x${run}n${i}`) }), headersFor())).outcome;
    });
  },
};
