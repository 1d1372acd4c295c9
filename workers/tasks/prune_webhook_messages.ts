// Daily: outbound webhook messages older than 30 days go, with their deliveries and attempts
// (app_private.prune_webhook_messages, in batches of 10,000 until none is left).

import type { Task } from "graphile-worker";

export const PRUNE_WEBHOOK_MESSAGES_TASK = "prune_webhook_messages";

export const pruneWebhookMessages: Task = async (_payload, helpers) => {
  let total = 0;
  for (;;) {
    const { rows } = await helpers.withPgClient((client) => client.query<{ n: number }>("select app_private.prune_webhook_messages() as n"));
    total += rows[0].n;
    if (rows[0].n < 10000) break;
  }
  helpers.logger.info(`${PRUNE_WEBHOOK_MESSAGES_TASK}: ${total} messages pruned`);
};
