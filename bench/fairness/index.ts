// The attacks bench:fairness runs, in order. To add one: a file in this folder exporting an
// Attack (./attack.ts), and its name here. Other attacks of issue 25 (fragment chain, sockets,
// realtime fan-out, big responses, lockouts) belong here as they land.

import type { Attack } from "./attack.ts";
import { poolFlood } from "./pool-flood.ts";
import { anonymousFlood } from "./anonymous-flood.ts";
import { stripeWebhookFlood } from "./stripe-webhook-flood.ts";

export const ATTACKS: Attack[] = [poolFlood, anonymousFlood, stripeWebhookFlood];
