// Sends an account mail queued by SQL (app_private.queue_account_email,
// db/functions/020-accounts/account-mail.sql): verify_email, reset_password, change_email (to
// the new address) carry a one-time token, which is issued here, just before sending, so it is
// never stored anywhere but as a hash; email_changed is a notice to the old address. Nothing is
// sent when there is nothing to send any more (already verified, account deleted). Run twice, a
// job issues a new token and the earlier one stops working.
//
// Links (client-app routes; docs/accounts.md, "Routes your client app implements"):
//   <APP_URL>/verify-email?token=…     -> verifyEmail(token)  (also confirms an email change)
//   <APP_URL>/reset-password?token=…   -> resetPassword(token, newPassword)

import { createHash } from "node:crypto";
import type { Task } from "graphile-worker";
import { mailConfig, type MailConfig } from "../../core/config.ts";
import { appLink, escapeHtml, htmlDocument, htmlLink, sendMail, type MailMessage } from "../mail.ts";

export const SEND_ACCOUNT_EMAIL_TASK = "send_account_email";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const TOKEN_KINDS = ["verify_email", "reset_password", "change_email"] as const;
type TokenKind = (typeof TOKEN_KINDS)[number];

export const ACCOUNT_LINK_PATHS: Record<TokenKind, string> = {
  verify_email: "/verify-email",
  change_email: "/verify-email",
  reset_password: "/reset-password",
};

interface IssuedToken {
  token: string;
  email: string;
  name: string;
  expires_at: Date;
}

export function accountMessage(kind: TokenKind, issued: IssuedToken, mail: MailConfig = mailConfig()): MailMessage {
  const link = appLink(mail, ACCOUNT_LINK_PATHS[kind], { token: issued.token });
  const expires = issued.expires_at.toISOString();
  const hello = `Hello ${issued.name},`;
  const copy = {
    verify_email: {
      subject: "Confirm your email address",
      body: "Please confirm that this is your email address:",
      action: "Confirm my email address",
      after: "If you did not create an account, ignore this message.",
    },
    change_email: {
      subject: "Confirm your new email address",
      body: "You asked to use this address for your account. Confirm it to make the change:",
      action: "Use this email address",
      after: "If you did not ask for this, ignore this message; nothing changes.",
    },
    reset_password: {
      subject: "Reset your password",
      body: "Someone (hopefully you) asked to reset your password. Choose a new one here:",
      action: "Choose a new password",
      after: "If you did not ask for this, ignore this message; your password stays as it is. Using the link signs out every device.",
    },
  }[kind];
  const text = [hello, "", copy.body, link, "", `The link works once, until ${expires}.`, copy.after].join("\n");
  const html = htmlDocument(copy.subject, [
    escapeHtml(hello),
    escapeHtml(copy.body),
    htmlLink(link, copy.action),
    escapeHtml(`The link works once, until ${expires}.`),
    escapeHtml(copy.after),
  ]);
  return { to: issued.email, subject: copy.subject, text, html };
}

export function emailChangedMessage(oldEmail: string, newEmail: string): MailMessage {
  const text = [
    `The email address of your account was changed to ${newEmail}.`,
    "",
    "If you did not do this, reset your password with the new address or contact support at once.",
  ].join("\n");
  const html = htmlDocument("Your email address was changed", [
    `The email address of your account was changed to <b>${escapeHtml(newEmail)}</b>.`,
    escapeHtml("If you did not do this, reset your password with the new address or contact support at once."),
  ]);
  return { to: oldEmail, subject: "Your email address was changed", text, html };
}

export const sendAccountEmail: Task = async (payload, helpers) => {
  const { kind, userId, email, oldEmail, newEmail } = (payload ?? {}) as Record<string, unknown>;
  const mail = mailConfig();
  // reset_password is queued by address (forgotPassword does not look it up): the account is
  // found here, or nothing is sent
  const byAddress = kind === "reset_password" && userId === undefined && typeof email === "string";
  if (!byAddress && (typeof userId !== "string" || !UUID.test(userId))) {
    helpers.logger.error(`${SEND_ACCOUNT_EMAIL_TASK}: bad payload, dropped`);
    return;
  }
  if (kind === "email_changed") {
    if (typeof oldEmail !== "string" || typeof newEmail !== "string") {
      helpers.logger.error(`${SEND_ACCOUNT_EMAIL_TASK}: bad payload, dropped`);
      return;
    }
    const sent = await sendMail(emailChangedMessage(oldEmail, newEmail), `account-email_changed-${userId}-${helpers.job.id}`, mail);
    helpers.logger.info(`${SEND_ACCOUNT_EMAIL_TASK}: email_changed notice for user ${userId} sent via ${sent.via}`);
    return;
  }
  if (!(TOKEN_KINDS as readonly unknown[]).includes(kind)) {
    helpers.logger.error(`${SEND_ACCOUNT_EMAIL_TASK}: unknown kind, dropped`);
    return;
  }
  const { rows } = await helpers.withPgClient((client) =>
    byAddress
      ? client.query<IssuedToken & { user_id: string }>("select * from app_private.issue_reset_token($1)", [email])
      : client.query<IssuedToken>("select * from app_private.issue_account_token($1, $2, $3)", [
          kind,
          userId,
          typeof email === "string" ? email : null,
        ]),
  );
  const who = byAddress ? `job ${helpers.job.id}` : `user ${userId}`;
  if (rows.length === 0) {
    helpers.logger.info(`${SEND_ACCOUNT_EMAIL_TASK}: ${kind as string} for ${who}: nothing to send`);
    return;
  }
  const tag = byAddress ? createHash("sha256").update(rows[0].email).digest("hex").slice(0, 16) : userId;
  const sent = await sendMail(accountMessage(kind as TokenKind, rows[0], mail), `account-${kind as string}-${tag}`, mail);
  helpers.logger.info(`${SEND_ACCOUNT_EMAIL_TASK}: ${kind as string} for ${who} sent via ${sent.via}`);
};
