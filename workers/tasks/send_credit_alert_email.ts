// Emails a fired credit alert (db/functions/140-credit-controls/alert-records.sql) to the
// organization's admins and owners. The job queued by the spending transaction (key
// credit_alert:<alert id>, no userId) queues one job per recipient, once per alert
// (app_private.queue_credit_alert_emails); each of those (key credit_alert:<alert id>:<user id>)
// reads what to say for that user and sends one message, text and HTML. Nothing is sent to a user
// who is no longer an admin, turned the credit alert emails off (setCreditAlertEmails) or has no
// verified address. Every message says how to turn them off. Safe to run twice: the outbox file is
// fixed per alert and user.
//
// Link (client-app route; docs/credits.md, "Usage alerts"): <APP_URL>/settings/notifications

import type { Task } from "graphile-worker";
import { mailConfig, type MailConfig } from "../../core/config.ts";
import { appLink, escapeHtml, htmlDocument, htmlLink, sendMail, type MailMessage } from "../mail.ts";

export const SEND_CREDIT_ALERT_EMAIL_TASK = "send_credit_alert_email";
export const CREDIT_ALERT_SETTINGS_PATH = "/settings/notifications";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface CreditAlertEmailRow {
  email: string;
  name: string;
  organization_name: string;
  kind: "low_balance" | "cap_used" | "grant_expiring";
  balance_at_most: string | null;
  available: string | null;
  percent: number | null;
  cap_spent: string | null;
  cap_limit: string | null;
  cap_period: string | null;
  cap_resets_at: Date | null;
  cap_scope: string | null;
  grant_remaining: string | null;
  grant_expires_at: Date | null;
  grant_source: string | null;
  fired_at: Date;
}

function credits(value: string | null): string {
  return `${Number(value ?? 0).toLocaleString("en-US")} credits`;
}

/** The subject and the sentences of one alert (plain text; escaped for HTML by the caller). */
function alertText(row: CreditAlertEmailRow): { subject: string; lines: string[] } {
  const org = row.organization_name;
  switch (row.kind) {
    case "low_balance":
      return {
        subject: `Low credit balance: ${org}`,
        lines: [
          `The available credits of ${org} fell to ${credits(row.available)}, at or below your alert threshold of ${credits(row.balance_at_most)}.`,
          "Buy credits or raise your plan to keep work running.",
        ],
      };
    case "cap_used": {
      const scope = { organization: " (the whole organization)", project: " (one project)", api_key: " (one API key)" }[row.cap_scope ?? ""] ?? "";
      return {
        subject: `Spend cap ${row.percent}% used: ${org}`,
        lines: [
          `${credits(row.cap_spent)} of the ${credits(row.cap_limit)} per ${row.cap_period} allowed by a spend cap of ${org}${scope} are used (your alert at ${row.percent}%).`,
          row.cap_resets_at ? `The cap resets at ${row.cap_resets_at.toISOString()}.` : "",
        ].filter(Boolean),
      };
    }
    case "grant_expiring":
      return {
        subject: `Credits expiring soon: ${org}`,
        lines: [
          `${credits(row.grant_remaining)} of a grant to ${org}${row.grant_source ? ` (${row.grant_source})` : ""} expire at ${row.grant_expires_at?.toISOString() ?? "soon"} unless they are spent.`,
        ],
      };
  }
}

export function creditAlertMessage(row: CreditAlertEmailRow, mail: MailConfig = mailConfig()): MailMessage {
  const { subject, lines } = alertText(row);
  const settings = appLink(mail, CREDIT_ALERT_SETTINGS_PATH, {});
  const hello = `Hello ${row.name},`;
  const why = `You get this email as an admin of ${row.organization_name}.`;
  const off = "To stop credit alert emails, turn them off in your notification settings";
  const text = [hello, "", ...lines, "", why, `${off}: ${settings}`, "(or call the setCreditAlertEmails mutation with enabled: false)."].join("\n");
  // The organization's and the user's names are chosen by users: escaped, never markup.
  const html = htmlDocument(subject, [
    escapeHtml(hello),
    ...lines.map(escapeHtml),
    `${escapeHtml(why)} ${escapeHtml(off)}: ${htmlLink(settings, "notification settings")}.`,
  ]);
  return { to: row.email, subject, text, html };
}

export const sendCreditAlertEmail: Task = async (payload, helpers) => {
  const { organizationId, alertId, userId } = (payload ?? {}) as Record<string, unknown>;
  if (typeof organizationId !== "string" || !UUID.test(organizationId) || typeof alertId !== "string" || !UUID.test(alertId)
      || (userId !== undefined && (typeof userId !== "string" || !UUID.test(userId)))) {
    helpers.logger.error(`${SEND_CREDIT_ALERT_EMAIL_TASK}: bad payload, dropped`);
    return;
  }
  if (userId === undefined) {
    const { rows } = await helpers.withPgClient((client) =>
      client.query<{ n: number }>("select app_private.queue_credit_alert_emails($1, $2) as n", [organizationId, alertId]));
    helpers.logger.info(`${SEND_CREDIT_ALERT_EMAIL_TASK}: alert ${alertId}: ${rows[0].n} email(s) queued`);
    return;
  }
  const mail = mailConfig();
  const { rows } = await helpers.withPgClient((client) =>
    client.query<CreditAlertEmailRow>("select * from app_private.credit_alert_email($1, $2, $3)", [organizationId, alertId, userId]));
  if (rows.length === 0) {
    helpers.logger.info(`${SEND_CREDIT_ALERT_EMAIL_TASK}: alert ${alertId} for user ${userId}: nothing to send`);
    return;
  }
  const sent = await sendMail(creditAlertMessage(rows[0], mail), `credit-alert-${alertId}-${userId}`, mail);
  helpers.logger.info(`${SEND_CREDIT_ALERT_EMAIL_TASK}: alert ${alertId} for user ${userId} sent via ${sent.via}`);
};
