// The account mails with the real graphile-worker: register's verification mail and a reset mail
// written to the outbox as .eml with a text and an HTML part, links from APP_URL to the documented
// client routes, the token in the link working (and stored only as a hash); the email-changed
// notice to the old address; nothing sent for an address already verified.

import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createHash } from "node:crypto";
import { runOnce } from "graphile-worker";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { taskList } from "../../workers/tasks/index.ts";

let db: TestDatabase;
let outbox: string;
const saved = { OUTBOX_DIR: process.env.OUTBOX_DIR, SMTP_URL: process.env.SMTP_URL, APP_URL: process.env.APP_URL };

beforeAll(async () => {
  db = await createTestDatabase();
  outbox = mkdtempSync(path.join(os.tmpdir(), "tenantbase-account-outbox-"));
  process.env.OUTBOX_DIR = outbox;
  process.env.APP_URL = "https://app.example.test/";
  delete process.env.SMTP_URL;
});
afterAll(async () => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  rmSync(outbox, { recursive: true, force: true });
  await db?.drop();
});

async function work(): Promise<void> {
  await runOnce({ connectionString: db.ownerUrl, taskList, concurrency: 1, noHandleSignals: true });
}
// Read as it is, no decoding: the outbox is for a developer to copy links from by hand.
const readEml = (file: string) => readFileSync(path.join(outbox, file), "utf8");
const mailsFor = (kind: string, userId: string) => readdirSync(outbox).filter((f) => f.startsWith(`account-${kind}-${userId}`));

test("register → verification mail (text + HTML) with a working link; the token is kept only as its hash", async () => {
  const { rows } = await db.queryAs(null, "select (app_public.register('mail@example.com', 'correct horse', 'Mia <b>')).sub as id");
  const userId = rows[0].id;
  await work();
  const [file] = mailsFor("verify_email", userId);
  const eml = readEml(file);
  expect(eml).toMatch(/^To: mail@example\.com$/m);
  expect(eml).toMatch(/^Subject: Confirm your email address$/m);
  expect(eml).toMatch(/Content-Type: text\/plain/);
  expect(eml).toMatch(/Content-Type: text\/html/);
  expect(eml).toContain("Hello Mia &lt;b&gt;,"); // the name is escaped in HTML
  const token = /https:\/\/app\.example\.test\/verify-email\?token=([0-9a-f]{64})/.exec(eml)![1];
  // The whole link on one line, twice (text and HTML): no quoted-printable "=3D" or soft breaks.
  expect(eml).toMatch(/^Content-Transfer-Encoding: 8bit$/m);
  expect(eml).not.toMatch(/quoted-printable|=3D|=\n/);
  expect(eml.split(`https://app.example.test/verify-email?token=${token}\n`).length).toBe(2);
  expect(eml).toContain(`href="https://app.example.test/verify-email?token=${token}"`);
  const stored = await db.owner.query("select encode(token_hash, 'hex') as h from app_private.account_tokens where user_id = $1", [userId]);
  expect(stored.rows).toEqual([{ h: createHash("sha256").update(token).digest("hex") }]);
  expect(JSON.stringify(stored.rows)).not.toContain(token);
  await db.queryAs(null, "select app_public.verify_email($1)", [token]);
  const v = await db.owner.query("select email_verified_at is not null as ok from app_public.users where id = $1", [userId]);
  expect(v.rows[0].ok).toBe(true);

  // verified now: a resend job finds nothing to send
  await db.owner.query("select app_private.queue_account_email('verify_email', $1)", [userId]);
  rmSync(path.join(outbox, file));
  await work();
  expect(mailsFor("verify_email", userId)).toEqual([]);
});

test("forgotPassword → reset mail to /reset-password; email change → link to the new address and a notice to the old", async () => {
  const { rows } = await db.queryAs(null, "select (app_public.register('reset@example.com', 'correct horse', 'Rae')).sub as id");
  const userId = rows[0].id;
  await db.queryAs(null, "select app_public.forgot_password('RESET@example.com')");
  await work();
  const resets = readdirSync(outbox).filter((f) => f.startsWith("account-reset_password-")).map(readEml);
  expect(resets).toHaveLength(1); // by address: the worker found the account
  const reset = resets[0];
  expect(reset).toMatch(/^To: reset@example\.com$/m);
  expect(reset).toMatch(/^Subject: Reset your password$/m);
  expect(reset).toMatch(/https:\/\/app\.example\.test\/reset-password\?token=[0-9a-f]{64}/);

  const actor = { userId, sessionId: null };
  await db.queryAs(actor, "select app_public.change_email('moved@example.com', 'correct horse')");
  await work();
  const change = readEml(mailsFor("change_email", userId)[0]);
  expect(change).toMatch(/^To: moved@example\.com$/m);
  const token = /\/verify-email\?token=([0-9a-f]{64})/.exec(change)![1];
  await db.queryAs(null, "select app_public.verify_email($1)", [token]);
  await work();
  const [notice] = mailsFor("email_changed", userId);
  const eml = readEml(notice);
  expect(eml).toMatch(/^To: reset@example\.com$/m);
  expect(eml).toContain("moved@example.com");
});
