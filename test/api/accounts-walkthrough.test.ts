// The accounts walkthrough (docs/accounts.md, section "Walkthrough") runs as written: every ```graphql block
// in order, as the actor its "# as …" line names, with <placeholders> filled from earlier answers
// and from the links in the mails the real worker writes to the outbox.

import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { runOnce } from "graphile-worker";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { projectRoot } from "../../core/paths.ts";
import { taskList } from "../../workers/tasks/index.ts";

let db: TestDatabase;
let server: TestServer;
let outbox: string;
const saved = { OUTBOX_DIR: process.env.OUTBOX_DIR, SMTP_URL: process.env.SMTP_URL, APP_URL: process.env.APP_URL };
beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db);
  outbox = mkdtempSync(path.join(os.tmpdir(), "tenantbase-walkthrough-outbox-"));
  process.env.OUTBOX_DIR = outbox;
  process.env.APP_URL = "https://app.example.test";
  delete process.env.SMTP_URL;
});
afterAll(async () => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  rmSync(outbox, { recursive: true, force: true });
  await server?.close();
  await db?.drop();
});

/** Sends what is queued, then returns the newest mail whose subject matches, decoded. */
async function latestMail(subject: string): Promise<string> {
  // No prepared statements: under TEST_PGBOUNCER this connection goes through transaction pooling,
  // where a second runOnce may land on a server connection that has the first one's statements.
  await runOnce({ connectionString: db.ownerUrl, taskList, concurrency: 1, noHandleSignals: true, noPreparedStatements: true });
  const mails = readdirSync(outbox)
    .map((f) => path.join(outbox, f))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)
    // read as written: the outbox is 8bit, a link and its token as they are (workers/mail.ts)
    .map((f) => readFileSync(f, "utf8"));
  const mail = mails.find((m) => m.includes(`Subject: ${subject}`));
  if (!mail) throw new Error(`no mail "${subject}" in the outbox`);
  return mail;
}
const tokenIn = (mail: string, route: string) => new RegExp(`https://app\\.example\\.test${route}\\?token=([0-9a-f]{64})`).exec(mail)![1];

test("every accounts walkthrough block runs without errors, in order", async () => {
  const doc = readFileSync(path.join(projectRoot, "docs", "accounts.md"), "utf8");
  const start = doc.indexOf("\n## Walkthrough\n");
  expect(start).toBeGreaterThan(-1);
  const end = doc.indexOf("\n## ", start + 1);
  const section = doc.slice(start, end === -1 ? undefined : end);
  const blocks = [...section.matchAll(/```graphql\n([\s\S]*?)```/g)].map((m) => m[1]);
  expect(blocks.length).toBeGreaterThanOrEqual(12);

  const tokens: Record<string, string> = {};
  const placeholders: Record<string, string> = {};
  const outcomes: any[] = [];
  for (const block of blocks) {
    const as = /^# as (.+)$/m.exec(block)?.[1].trim();
    expect(as).toBeDefined();
    if (block.includes("<verification token>")) placeholders["verification token"] = tokenIn(await latestMail("Confirm your email address"), "/verify-email");
    if (block.includes("<reset token>")) placeholders["reset token"] = tokenIn(await latestMail("Reset your password"), "/reset-password");
    if (block.includes("<email change token>")) placeholders["email change token"] = tokenIn(await latestMail("Confirm your new email address"), "/verify-email");
    const query = block.replace(/<([^>]+)>/g, (whole, name) => placeholders[name] ?? whole);
    expect(query).not.toMatch(/<[^>]+>/);
    const response = await server.graphql(query, {}, as === "anonymous" ? null : tokens[as!]);
    expect({ query, errors: response.errors }).toEqual({ query, errors: undefined });
    const d = response.data;
    if (d.register) tokens.grace = d.register.jwtToken;
    if (d.resetPassword) tokens.grace = d.resetPassword.jwtToken;
    if (d.authenticate) placeholders["other token"] = d.authenticate.jwtToken;
    if (d.mySessions) placeholders["other session id"] = d.mySessions.find((s: any) => !s.current).id;
    outcomes.push(d);
  }

  const [, before, verified, forgot, , changed, changeAsked, changeVerified, , sessions, revoked, , deleted] = outcomes;
  expect(before.currentUser).toEqual({ email: "grace@example.com", emailVerified: false });
  expect(verified.verifyEmail.success).toBe(true);
  expect(forgot.forgotPassword.success).toBe(true);
  expect(changed.changePassword.success).toBe(true);
  expect(changeAsked.changeEmail.success).toBe(true);
  expect(changeVerified.verifyEmail.success).toBe(true);
  expect(sessions.currentUser).toEqual({ email: "grace@hopper.example", emailVerified: true });
  expect(sessions.mySessions.map((s: any) => s.current).sort()).toEqual([false, true]);
  expect(revoked.revokeSession.success).toBe(true);
  expect((await server.graphql("{ currentUser { id } }", {}, placeholders["other token"])).status).toBe(401);
  expect(deleted.deleteAccount.success).toBe(true);
  // the notice went to the old address
  expect(await latestMail("Your email address was changed")).toMatch(/^To: grace@example\.com$/m);
  // what the text says after the last block
  expect((await server.graphql("{ currentUser { id } }", {}, tokens.grace)).status).toBe(401);
  const again = await server.graphql(`mutation { authenticate(input: {email: "grace@hopper.example", password: "an even better secret"}) { jwtToken } }`);
  expect(again.errors?.[0].extensions?.code).toBe("INVALID_CREDENTIALS");
});
