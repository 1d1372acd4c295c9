// Sends the invitation email queued by inviteMember / resendInvitation (job_key
// invitation_email:<id>, so a resend replaces an unsent one). SMTP when SMTP_URL is set;
// otherwise the message is written as an .eml file to OUTBOX_DIR (default <DATA_DIR>/outbox,
// i.e. .data/outbox) and logged (settings: core/config.ts, mailConfig), so development needs no mail server. Safe to run twice: the file
// name is fixed per token, and a revoked, accepted, expired or resent invitation sends nothing.

import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import nodemailer, { type Transporter } from "nodemailer";
import type { Task } from "graphile-worker";
import { mailConfig, type MailConfig } from "../../core/config.ts";

export const SEND_INVITATION_EMAIL_TASK = "send_invitation_email";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;


let smtp: { url: string; transport: Transporter } | null = null;
function smtpTransport(url: string): Transporter {
  if (smtp?.url !== url) smtp = { url, transport: nodemailer.createTransport(url) };
  return smtp.transport;
}
const fileTransport = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: "unix" });

interface InvitationEmailRow {
  email: string;
  role: string;
  organization_name: string;
  organization_slug: string;
  inviter_name: string | null;
  expires_at: Date;
}

export function invitationMessage(row: InvitationEmailRow, token: string, mail: MailConfig = mailConfig()) {
  const link = `${mail.appUrl}/invitations/accept?token=${encodeURIComponent(token)}`;
  const who = row.inviter_name ?? "Someone";
  const text = [
    `${who} invited you to join ${row.organization_name} on tenantbase as ${row.role === "admin" ? "an admin" : `a ${row.role}`}.`,
    "",
    `Accept the invitation: ${link}`,
    "",
    `Or sign in with ${row.email} and call the acceptInvitation mutation with this token:`,
    token,
    "",
    `The invitation expires on ${row.expires_at.toISOString()}.`,
  ].join("\n");
  return {
    from: mail.from,
    to: row.email,
    subject: `You are invited to join ${row.organization_name}`,
    text,
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
  if (mail.smtpUrl) {
    await smtpTransport(mail.smtpUrl).sendMail(message);
    helpers.logger.info(`${SEND_INVITATION_EMAIL_TASK}: sent invitation ${invitationId} to ${message.to}`);
    return;
  }
  const info = await fileTransport.sendMail(message);
  const dir = mail.outboxDir;
  mkdirSync(dir, { recursive: true });
  const tokenTag = createHash("sha256").update(token).digest("hex").slice(0, 12);
  const file = path.join(dir, `invitation-${invitationId}-${tokenTag}.eml`);
  writeFileSync(file, info.message as Buffer);
  helpers.logger.info(`${SEND_INVITATION_EMAIL_TASK}: no SMTP_URL; invitation for ${message.to} written to ${file}`);
};
