// Issue 25, finding 2: the attacker sends wrong passwords for the witness's email, from other
// client addresses than the witness's (4 senders, each its own loopback address 127.2.x.y: one
// address alone is refused after 50 attempts per 15 minutes, a real attacker has several). The
// witness's measurement for this attack is the witness signing in with its correct password from
// its own address, which signed in once before (a known device), paced (its address's own limit
// counts these too): its latency and its success rate are what the lockout would ruin.

import { loops, type Attack, type AttackContext } from "./attack.ts";
import { graphql } from "./graphql.ts";

/** The bench sets it on the witness's account (bench/fairness.ts); the attacker never sends it. */
export const WITNESS_PASSWORD = "fairbench-Witness-correct-horse-42";

const AUTHENTICATE = `mutation A($email: String!, $password: String!) { authenticate(input: { email: $email, password: $password }) { jwtToken } }`;
// The attacker's addresses are fresh each run (the hard per-address limit of the previous run must
// not carry over); the witness's is the same every run: it is a known device of the account (it
// signed in before), as an owner's own computer is. Its address's limit (50 sign-ins per 15
// minutes) allows about three runs in 15 minutes at this pace.
const run = process.pid % 250;
const witnessAddress = "127.3.0.1";

async function witnessSignIn(context: AttackContext): Promise<void> {
  const answer = await graphql(context.graphqlUrl, AUTHENTICATE, { email: context.witnessEmail, password: WITNESS_PASSWORD }, undefined, witnessAddress);
  if (answer.status !== 200 || answer.code || !answer.data?.authenticate?.jwtToken) throw new Error(answer.outcome);
}

export const lockout: Attack = {
  name: "sign-in lockout (A2)",
  description: "4 senders (4 addresses) of wrong passwords for the witness's email; the witness signs in",
  start(context) {
    return loops(4, async (sender, i) => {
      const from = `127.2.${run}.${sender + 1}`;
      return (await graphql(context.graphqlUrl, AUTHENTICATE, { email: context.witnessEmail, password: `wrong-password-${i}` }, undefined, from)).outcome;
    });
  },
  witness: {
    description: "the witness signs in with its correct password (authenticate, bcrypt), from its known address, every 500 ms",
    prepare: witnessSignIn,
    once: witnessSignIn,
    paceMs: 500,
  },
};
