// Tells an organization's admins and owners that one of its webhook endpoints was disabled by
// tenantbase (410 Gone, or failing for WEBHOOK_DISABLE_AFTER_FAILING_HOURS), and how to recover
// what it missed. Queued by app_private.record_webhook_attempt with job key
// webhook_endpoint_disabled_email:<endpoint id>; sends nothing when the endpoint was enabled again.

import type { Task } from "graphile-worker";
import { mailConfig } from "../../core/config.ts";
import { escapeHtml, htmlDocument, sendMail } from "../mail.ts";

export const WEBHOOK_ENDPOINT_DISABLED_EMAIL_TASK = "webhook_endpoint_disabled_email";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface Row {
  email: string;
  organization_name: string;
  url: string;
  disabled_reason: string;
  failing_since: Date | null;
}

export const webhookEndpointDisabledEmail: Task = async (payload, helpers) => {
  const { organizationId, endpointId } = (payload ?? {}) as { organizationId?: unknown; endpointId?: unknown };
  if (typeof organizationId !== "string" || !UUID.test(organizationId) || typeof endpointId !== "string" || !UUID.test(endpointId)) {
    helpers.logger.error(`${WEBHOOK_ENDPOINT_DISABLED_EMAIL_TASK}: bad payload, dropped`);
    return;
  }
  const { rows } = await helpers.withPgClient((client) =>
    client.query<Row>("select * from app_private.webhook_endpoint_disabled_email($1, $2)", [organizationId, endpointId]),
  );
  const mail = mailConfig();
  for (const row of rows) {
    const why =
      row.disabled_reason === "gone"
        ? "it answered 410 Gone"
        : `every delivery to it has failed since ${row.failing_since?.toISOString() ?? "then"}`;
    const lines = [
      `A webhook endpoint of ${row.organization_name} was disabled because ${why}:`,
      row.url,
      "",
      "Nothing is sent to it until an admin enables it again: enableWebhookEndpoint with recover: true also sends what it missed (within 30 days), each message with its original webhook-id.",
    ];
    await sendMail(
      {
        to: row.email,
        subject: `A webhook endpoint of ${row.organization_name} was disabled`,
        text: lines.join("\n"),
        html: htmlDocument("A webhook endpoint was disabled", lines.filter(Boolean).map(escapeHtml)),
      },
      `webhook-disabled-${endpointId}-${row.email}`,
      mail,
    );
  }
  helpers.logger.info(`${WEBHOOK_ENDPOINT_DISABLED_EMAIL_TASK}: endpoint ${endpointId}: ${rows.length} admins told`);
};
