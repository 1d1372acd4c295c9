// The one way the worker sends mail: SMTP when SMTP_URL is set; otherwise the message is written
// as an .eml file to OUTBOX_DIR (default <DATA_DIR>/outbox) and logged, so development needs no
// mail server (settings: core/config.ts mailConfig, read when a task runs). Every message has a
// text and an HTML body; values placed in HTML go through escapeHtml. Links start at APP_URL.
// An outbox file is written with 8bit bodies, not quoted-printable: a developer opens it in an
// editor and copies a link or token as it is (quoted-printable would cut a long link with "=" and
// turn "token=" into "token=3D"). Over SMTP nodemailer chooses the encoding as usual.

import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import nodemailer, { type Transporter } from "nodemailer";
import { mailConfig, type MailConfig } from "../core/config.ts";

export interface MailMessage {
  to: string;
  subject: string;
  text: string;
  html: string;
}

let smtp: { url: string; transport: Transporter } | null = null;
function smtpTransport(url: string): Transporter {
  if (smtp?.url !== url) smtp = { url, transport: nodemailer.createTransport(url) };
  return smtp.transport;
}
const fileTransport = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: "unix" });

const HTML_ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Text made safe to place in HTML content or a quoted attribute. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}

/** A link into the client app: APP_URL + path + query (values URL-encoded). */
export function appLink(mail: MailConfig, pathname: string, query: Record<string, string>): string {
  const search = new URLSearchParams(query).toString();
  return `${mail.appUrl}${pathname}${search ? `?${search}` : ""}`;
}

/** A minimal HTML document around paragraphs that are already HTML (escape their values). */
export function htmlDocument(title: string, paragraphs: string[]): string {
  return [
    "<!doctype html>",
    `<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>`,
    '<body style="font-family: sans-serif; line-height: 1.5">',
    ...paragraphs.map((p) => `<p>${p}</p>`),
    "</body></html>",
  ].join("\n");
}

/** An HTML button-like link; href and label are escaped here. */
export function htmlLink(href: string, label: string): string {
  return `<a href="${escapeHtml(href)}">${escapeHtml(label)}</a>`;
}

/** RFC 5322 caps a line at 998 octets; 8bit is valid below that. */
const MAX_LINE_OCTETS = 998;

/**
 * A body part written as it is (Content-Transfer-Encoding: 8bit, UTF-8), so the outbox file reads
 * like the message; a body with a line too long for 8bit is left to nodemailer's encoding.
 */
function readablePart(type: string, body: string): string | { raw: string } {
  const lines = body.replace(/\r\n/g, "\n").split("\n");
  if (lines.some((line) => Buffer.byteLength(line) > MAX_LINE_OCTETS)) return body;
  return { raw: `Content-Type: ${type}; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n${lines.join("\n")}` };
}

export interface SentMail {
  /** "smtp", or the .eml file written to the outbox. */
  via: "smtp" | string;
}

/**
 * Sends one message. outboxName names the .eml file without SMTP (fixed per message, so a job
 * run twice overwrites its own file rather than adding one).
 */
export async function sendMail(message: MailMessage, outboxName: string, mail: MailConfig = mailConfig()): Promise<SentMail> {
  const full = { from: mail.from, ...message };
  if (mail.smtpUrl) {
    await smtpTransport(mail.smtpUrl).sendMail(full);
    return { via: "smtp" };
  }
  const info = await fileTransport.sendMail({ ...full, text: readablePart("text/plain", message.text), html: readablePart("text/html", message.html) });
  mkdirSync(mail.outboxDir, { recursive: true });
  const file = path.join(mail.outboxDir, `${outboxName.replace(/[^A-Za-z0-9._-]/g, "_")}.eml`);
  writeFileSync(file, info.message as Buffer);
  return { via: file };
}
