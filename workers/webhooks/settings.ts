// Hands the worker's outbound-webhook settings to SQL (app_private.webhook_settings), so that
// creating an endpoint refuses what delivery would: http outside development, private addresses
// unless WEBHOOK_ALLOW_PRIVATE_ADDRESSES. Written by every worker at start-up.

import pg from "pg";
import type { OutboundWebhooksConfig } from "../../core/config.ts";

export async function writeWebhookSettings(ownerUrl: string, config: OutboundWebhooksConfig): Promise<void> {
  const client = new pg.Client({ connectionString: ownerUrl });
  await client.connect();
  try {
    await client.query(
      `insert into app_private.webhook_settings as s (id, allow_private_addresses, allow_http) values (true, $1, $2)
       on conflict (id) do update set allow_private_addresses = excluded.allow_private_addresses, allow_http = excluded.allow_http
       where (s.allow_private_addresses, s.allow_http) is distinct from (excluded.allow_private_addresses, excluded.allow_http)`,
      [config.allowPrivateAddresses, config.allowHttp],
    );
  } finally {
    await client.end();
  }
}
