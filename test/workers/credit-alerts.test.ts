// Usage alert emails with the real graphile-worker: a spend that crosses a low-balance threshold
// emails each admin and owner once (text + HTML, names escaped, how to turn them off), not the
// members, not an admin who turned them off; running the jobs again sends nothing more; the daily
// notice of grants about to expire honours CREDIT_EXPIRY_NOTICE_DAYS and notices a grant once.

import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { Logger, parseCrontab, runOnce } from "graphile-worker";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { addMember, createOrganization, createUser } from "../helpers/fixtures.ts";
import { setPlan } from "../helpers/team.ts";
import { taskList } from "../../workers/tasks/index.ts";
import { readCrontab } from "../../workers/runner.ts";

let db: TestDatabase;
let workerPool: pg.Pool;
let outbox: string;
const saved = { OUTBOX_DIR: process.env.OUTBOX_DIR, SMTP_URL: process.env.SMTP_URL, APP_URL: process.env.APP_URL, CREDIT_EXPIRY_NOTICE_DAYS: process.env.CREDIT_EXPIRY_NOTICE_DAYS };

beforeAll(async () => {
  db = await createTestDatabase();
  workerPool = new pg.Pool({ connectionString: db.ownerUrl, max: 2 });
  workerPool.on("error", () => {});
  outbox = mkdtempSync(path.join(os.tmpdir(), "tenantbase-alert-outbox-"));
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
  await workerPool?.end();
  await db?.drop();
});

const quiet = new Logger(() => () => {});
const work = () => runOnce({ pgPool: workerPool, taskList, concurrency: 1, noHandleSignals: true, logger: quiet });
const mails = () => readdirSync(outbox).filter((f) => f.startsWith("credit-alert-")).sort();
const read = (file: string) => readFileSync(path.join(outbox, file), "utf8");

test("a low-balance alert emails each admin and owner once; members and those who opted out get nothing", async () => {
  const owner = await createUser(db, "Olga <Owner>");
  const org = await createOrganization(db, owner, "Acme <b>Labs</b>");
  await setPlan(db, org.id, "enterprise");
  const admin = await createUser(db, "Ada Admin");
  const quiet = await createUser(db, "Quinn Quiet");
  const member = await createUser(db, "Mo Member");
  await addMember(db, org.id, admin, "admin");
  await addMember(db, org.id, quiet, "admin");
  await addMember(db, org.id, member, "member");
  await db.queryAs(quiet, "select app_public.set_credit_alert_emails(false)");
  await db.owner.query("select app_private.grant_credits($1, 1000, 'purchase', null, null)", [org.id]);
  const { rows } = await db.owner.query("select available::int from app_public.credit_accounts where organization_id = $1", [org.id]);
  const threshold = rows[0].available - 500;
  await db.queryAs(owner, "select app_public.set_credit_alert_threshold($1, 'low_balance', $2)", [org.id, threshold]);
  await db.queryAs(member, "select app_public.reserve_credits($1, 600, 'cross')", [org.id]);
  await work();

  const { rows: alert } = await db.owner.query("select id from app_public.credit_alerts where organization_id = $1", [org.id]);
  expect(mails()).toEqual([`credit-alert-${alert[0].id}-${admin.userId}.eml`, `credit-alert-${alert[0].id}-${owner.userId}.eml`].sort());
  const eml = read(`credit-alert-${alert[0].id}-${owner.userId}.eml`);
  expect(eml).toContain(`To: ${owner.email}`);
  expect(eml).toMatch(/^Subject: Low credit balance: Acme <b>Labs<\/b>$/m);
  expect(eml).toMatch(/Content-Type: text\/plain/);
  expect(eml).toMatch(/Content-Type: text\/html/);
  expect(eml).toContain(`fell to ${(threshold - 100).toLocaleString("en-US")} credits, at or below your alert threshold of ${threshold.toLocaleString("en-US")} credits`);
  expect(eml).toContain("Hello Olga &lt;Owner&gt;,");
  expect(eml).toContain("Acme &lt;b&gt;Labs&lt;/b&gt;");
  const html = eml.slice(eml.indexOf("Content-Type: text/html"));
  expect(html).not.toContain("<b>Labs</b>");
  expect(html).not.toContain("<Owner>");
  // how to turn them off, in both parts
  expect(eml).toContain("To stop credit alert emails, turn them off in your notification settings: https://app.example.test/settings/notifications");
  expect(eml).toContain('href="https://app.example.test/settings/notifications"');
  expect(eml).toContain("setCreditAlertEmails");

  // run again: nothing more
  rmSync(path.join(outbox, mails()[0]));
  rmSync(path.join(outbox, mails()[0]));
  await db.owner.query("select app_private.queue_credit_alert_emails($1, $2)", [org.id, alert[0].id]);
  await work();
  expect(mails()).toEqual([]);
});

test("a spend cap alert's email names the cap, what is used and when it resets", async () => {
  const owner = await createUser(db, "Cap Owner");
  const org = await createOrganization(db, owner, "Capped Org");
  await setPlan(db, org.id, "enterprise");
  await db.owner.query("select app_private.grant_credits($1, 10000, 'purchase', null, null)", [org.id]);
  const cap = (await db.queryAs(owner, "select id from app_public.set_spend_cap($1, 'week', 1000)", [org.id])).rows[0].id;
  await db.queryAs(owner, "select app_public.set_credit_alert_threshold($1, 'cap_used', null, $2, 80)", [org.id, cap]);
  await db.queryAs(owner, "select app_public.reserve_credits($1, 850, 'cap-80')", [org.id]);
  await work();
  const files = mails().filter((f) => f.endsWith(`-${owner.userId}.eml`));
  expect(files).toHaveLength(1);
  const eml = read(files[0]);
  expect(eml).toMatch(/^Subject: Spend cap 80% used: Capped Org$/m);
  expect(eml).toContain("850 credits of the 1,000 credits per week allowed by a spend cap of Capped Org (the whole organization) are used (your alert at 80%).");
  expect(eml).toMatch(/The cap resets at \d{4}-\d{2}-\d{2}T00:00:00\.000Z\./);
});

test("the daily notice: grants within CREDIT_EXPIRY_NOTICE_DAYS with credits left, once each, emailed", async () => {
  const owner = await createUser(db, "Grace Grant");
  const org = await createOrganization(db, owner, "Expiring Org");
  await db.owner.query(
    "select app_private.debit_credits($1, a.available, 'spend', 'spend-all') from app_public.credit_accounts a where a.organization_id = $1 and a.available > 0",
    [org.id]);
  const grant = async (days: number) =>
    (await db.owner.query("select grant_id from app_private.grant_credits_as($1, 250, 'promotional', 'launch_promo', now() + make_interval(days => $2), null)", [org.id, days])).rows[0].grant_id;
  const soon = await grant(5);
  const later = await grant(12);
  const queue = () => db.owner.query("select graphile_worker.add_job('notice_expiring_credit_grants', '{}'::json)");
  const noticed = async () =>
    (await db.owner.query("select grant_id from app_public.credit_alerts where organization_id = $1 and kind = 'grant_expiring' order by grant_expires_at", [org.id])).rows.map((r) => r.grant_id);

  delete process.env.CREDIT_EXPIRY_NOTICE_DAYS; // default 7
  await queue();
  await work();
  expect(await noticed()).toEqual([soon]);
  const files = mails().filter((f) => f.endsWith(`-${owner.userId}.eml`));
  expect(files).toHaveLength(1);
  const eml = read(files[0]);
  expect(eml).toMatch(/^Subject: Credits expiring soon: Expiring Org$/m);
  expect(eml).toContain("250 credits of a grant to Expiring Org (launch_promo) expire at");

  process.env.CREDIT_EXPIRY_NOTICE_DAYS = "14";
  await queue();
  await queue();
  await work();
  expect(await noticed()).toEqual([soon, later]);
  expect(mails().filter((f) => f.endsWith(`-${owner.userId}.eml`))).toHaveLength(2);
});

test("the crontab schedules the daily notice, and the task exists", () => {
  const items = parseCrontab(readCrontab());
  expect(items.map((item) => item.task)).toContain("notice_expiring_credit_grants");
  expect(Object.keys(taskList)).toEqual(expect.arrayContaining(["notice_expiring_credit_grants", "send_credit_alert_email"]));
});
