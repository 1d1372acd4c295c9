// Tells an organization's admins and owners about auto top-up (queued by
// app_private.queue_auto_top_up_email, db/functions/310-auto-top-up/top-up-attempts.sql), one
// message to each, text and HTML:
//   declined                 the card was declined (Stripe's decline code); retried after an hour
//   authentication_required  the bank wants the cardholder: the link completes the payment;
//                            auto top-up is paused until it does
//   burst                    more than 3 attempts in 10 minutes were refused (logged here too)
// Run twice, a job writes the same messages again (the outbox file names are fixed per message).

import type { Task } from "graphile-worker";
import { mailConfig } from "../../core/config.ts";
import { escapeHtml, htmlDocument, htmlLink, sendMail, type MailMessage } from "../mail.ts";

export const SEND_AUTO_TOP_UP_EMAIL_TASK = "send_auto_top_up_email";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const KINDS = ["declined", "authentication_required", "burst"] as const;
type Kind = (typeof KINDS)[number];

interface Recipient {
  email: string;
  name: string;
  organization_name: string;
  credits: string | null;
  amount: string | null;
  currency: string | null;
  decline_code: string | null;
  action_url: string | null;
}

/** An amount in the currency's smallest unit, written for a person (1900 usd → $19.00, 500 jpy → ¥500). */
export function money(amount: string | null, currency: string | null): string {
  if (amount === null || currency === null) return "";
  const format = new Intl.NumberFormat("en", { style: "currency", currency: currency.toUpperCase() });
  return format.format(Number(amount) / 10 ** (format.resolvedOptions().maximumFractionDigits ?? 2));
}

export function autoTopUpMessage(kind: Kind, r: Recipient): MailMessage {
  const hello = `Hello ${r.name},`;
  const org = r.organization_name;
  const what = r.credits ? `${r.credits} credits for ${money(r.amount, r.currency)}` : "";
  if (kind === "declined") {
    const subject = `Auto top-up for ${org}: card declined`;
    const lines = [
      `The automatic purchase of ${what} for ${org} was declined by the bank (decline code: ${r.decline_code ?? "card_declined"}).`,
      "Auto top-up tries again in an hour at the earliest. Save another card for automatic payments to try sooner.",
    ];
    return {
      to: r.email,
      subject,
      text: [hello, "", ...lines].join("\n"),
      html: htmlDocument(subject, [escapeHtml(hello), ...lines.map(escapeHtml)]),
    };
  }
  if (kind === "authentication_required") {
    const subject = `Auto top-up for ${org}: your bank asks you to confirm a payment`;
    const body = `The automatic purchase of ${what} for ${org} needs the cardholder to confirm it. Auto top-up is paused until the payment is completed:`;
    const link = r.action_url ?? "";
    return {
      to: r.email,
      subject,
      text: [hello, "", body, link].join("\n"),
      html: htmlDocument(subject, [escapeHtml(hello), escapeHtml(body), htmlLink(link, "Complete the payment")]),
    };
  }
  const subject = `Auto top-up for ${org} stopped: too many purchases at once`;
  const lines = [
    `More than 3 automatic purchases for ${org} were due within 10 minutes; the next ones were not made.`,
    "Credits are being spent faster than auto top-up refills them. Check what is spending them, or raise the threshold or the pack size.",
  ];
  return {
    to: r.email,
    subject,
    text: [hello, "", ...lines].join("\n"),
    html: htmlDocument(subject, [escapeHtml(hello), ...lines.map(escapeHtml)]),
  };
}

export const sendAutoTopUpEmail: Task = async (payload, helpers) => {
  const { organizationId, attemptId, kind } = (payload ?? {}) as Record<string, unknown>;
  if (
    typeof organizationId !== "string" || !UUID.test(organizationId) ||
    (attemptId !== null && (typeof attemptId !== "string" || !UUID.test(attemptId))) ||
    !(KINDS as readonly unknown[]).includes(kind)
  ) {
    helpers.logger.error(`${SEND_AUTO_TOP_UP_EMAIL_TASK}: bad payload, dropped`);
    return;
  }
  if (kind === "burst") {
    helpers.logger.warn(`${SEND_AUTO_TOP_UP_EMAIL_TASK}: auto top-up burst for organization ${organizationId}; further attempts refused for now`);
  }
  const { rows } = await helpers.withPgClient((client) =>
    client.query<Recipient>("select * from app_private.auto_top_up_mail($1, $2)", [organizationId, attemptId]),
  );
  const mail = mailConfig();
  for (const [i, recipient] of rows.entries()) {
    await sendMail(autoTopUpMessage(kind as Kind, recipient), `auto-top-up-${kind as string}-${organizationId}-${attemptId ?? helpers.job.id}-${i}`, mail);
  }
  helpers.logger.info(`${SEND_AUTO_TOP_UP_EMAIL_TASK}: ${kind as string} for organization ${organizationId} sent to ${rows.length} admins`);
};
