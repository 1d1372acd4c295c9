// Sends the invitation email queued by inviteMember / resendInvitation (job_key
// invitation_email:<id>, so a resend replaces an unsent one). SMTP when SMTP_URL is set;
// otherwise the message is written as an .eml file to OUTBOX_DIR (default <DATA_DIR>/outbox,
// i.e. .data/outbox) and logged (workers/mail.ts; settings: core/config.ts, mailConfig), so development needs no mail server. Safe to run twice: the file
// name is fixed per token, and a revoked, accepted, expired or resent invitation sends nothing.

import { createHash } from "node:crypto";
import type { Task } from "graphile-worker";
import { mailConfig, type MailConfig } from "../../core/config.ts";
import { appLink, escapeHtml, htmlDocument, htmlLink, sendMail, type MailMessage } from "../mail.ts";

export const SEND_INVITATION_EMAIL_TASK = "send_invitation_email";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface InvitationEmailRow {
  email: string;
  role: string;
  organization_name: string;
  organization_slug: string;
  inviter_name: string | null;
  expires_at: Date;
}

export function invitationMessage(row: InvitationEmailRow, token: string, mail: MailConfig = mailConfig()): MailMessage {
  const link = appLink(mail, "/invitations/accept", { token });
  const who = row.inviter_name ?? "Someone";
  const role = row.role === "admin" ? "an admin" : `a ${row.role}`;
  const text = [
    `${who} invited you to join ${row.organization_name} on tenantbase as ${role}.`,
    "",
    `Accept the invitation: ${link}`,
    "",
    `Or sign in with ${row.email} and call the acceptInvitation mutation with this token:`,
    token,
    "",
    `The invitation expires on ${row.expires_at.toISOString()}.`,
  ].join("\n");
  // The organization's and the inviter's names are chosen by users: escaped, never markup.
  const html = htmlDocument(`You are invited to join ${row.organization_name}`, [
    `<b>${escapeHtml(who)}</b> invited you to join <b>${escapeHtml(row.organization_name)}</b> on tenantbase as ${escapeHtml(role)}.`,
    htmlLink(link, "Accept the invitation"),
    `Or sign in with ${escapeHtml(row.email)} and call the acceptInvitation mutation with this token:<br><code>${escapeHtml(token)}</code>`,
    escapeHtml(`The invitation expires on ${row.expires_at.toISOString()}.`),
  ]);
  return {
    to: row.email,
    subject: `You are invited to join ${row.organization_name}`,
    text,
    html,
  };
}

export const sendInvitationEmail: Task = async (payload, helpers) => {
  const { invitationId, token } = (payload ?? {}) as { invitationId?: unknown; token?: unknown };
  if (typeof invitationId !== "string" || !UUID.test(invitationId) || typeof token !== "string") {
    helpers.logger.error(`${SEND_INVITATION_EMAIL_TASK}: bad payload, dropped`);
    return;
  }
  const { rows } = await helpers.withPgClient((client) =>
    client.query<InvitationEmailRow>("select * from app_private.invitation_email($1, $2)", [invitationId, token]),
  );
  if (rows.length === 0) {
    helpers.logger.info(`${SEND_INVITATION_EMAIL_TASK}: invitation ${invitationId} is no longer pending with this token; nothing sent`);
    return;
  }
  const mail = mailConfig();
  const message = invitationMessage(rows[0], token, mail);
  const tokenTag = createHash("sha256").update(token).digest("hex").slice(0, 12);
  const sent = await sendMail(message, `invitation-${invitationId}-${tokenTag}`, mail);
  helpers.logger.info(`${SEND_INVITATION_EMAIL_TASK}: invitation ${invitationId} for ${message.to} sent via ${sent.via}`);
};
