// The attacks bench:fairness runs, in order, one per finding of issue 25 section A that is load
// (and one extra anonymous flood). To add one: a file in this folder exporting an Attack
// (./attack.ts), and its name here. Findings that are not load are listed in SKIPPED with why.

import type { Attack } from "./attack.ts";
import { poolFlood } from "./pool-flood.ts";
import { anonymousFlood } from "./anonymous-flood.ts";
import { stripeWebhookFlood } from "./stripe-webhook-flood.ts";
import { fragmentChainAttack } from "./fragment-chain.ts";
import { lockout } from "./lockout.ts";
import { sockets } from "./sockets.ts";
import { fanout } from "./fanout.ts";
import { bigResponses } from "./big-responses.ts";
import { stateGrowth } from "./state-growth.ts";
import { documentCache } from "./document-cache.ts";

export const ATTACKS: Attack[] = [
  fragmentChainAttack,
  lockout,
  sockets,
  fanout,
  poolFlood,
  bigResponses,
  stripeWebhookFlood,
  stateGrowth,
  documentCache,
  anonymousFlood,
];

export const SKIPPED: { finding: string; why: string }[] = [
  { finding: "free credits farmed (A3)", why: "accounting, not load: refused by the organization limits (test/adversarial)" },
  { finding: "removed admin's keys (A10)", why: "access, not load: keys revoked on removal (test/adversarial)" },
  { finding: "EMAIL_TAKEN enumeration (A12)", why: "disclosure, not load" },
];
