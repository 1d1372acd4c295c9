// The team jobs with the real graphile-worker: the invitation email (written to the outbox as
// .eml without SMTP_URL, sent over SMTP with it), resend replacing an unsent email, revoke
// removing it, expiry at expires_at, the daily hard delete and audit retention, and the crontab.

import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { parseCrontab, runOnce } from "graphile-worker";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { createOrganization, createUser, type TestUser } from "../helpers/fixtures.ts";
import { invite, setPlan } from "../helpers/team.ts";
import { taskList } from "../../workers/tasks/index.ts";
import { readCrontab } from "../../workers/runner.ts";

let db: TestDatabase;
let owner: TestUser;
let org: string;
let outbox: string;
const saved = { OUTBOX_DIR: process.env.OUTBOX_DIR, SMTP_URL: process.env.SMTP_URL, APP_URL: process.env.APP_URL };

beforeAll(async () => {
  db = await createTestDatabase();
  owner = await createUser(db, "Ingrid Inviter");
  org = (await createOrganization(db, owner, "Mail Co")).id;
  await setPlan(db, org, "enterprise");
  outbox = mkdtempSync(path.join(os.tmpdir(), "tenantbase-outbox-"));
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
  await db?.drop();
});

/**
 * Runs every job that is due now with the real worker and task list, and returns once none is
 * left: runOnce can resolve just before a finished job's row is deleted, so wait for that too.
 */
async function work(): Promise<void> {
  for (;;) {
    await runOnce({ connectionString: db.ownerUrl, taskList, concurrency: 2, noHandleSignals: true });
    const { rows } = await db.owner.query(
      `select count(*) filter (where locked_at is null)::int as due, count(*) filter (where locked_at is not null)::int as locked
       from graphile_worker.jobs where run_at <= now() and attempts < max_attempts`,
    );
    if (rows[0].due === 0 && rows[0].locked === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
/** An .eml file as written: the outbox is 8bit, links and tokens as they are (workers/mail.ts). */
const readEml = (file: string) => readFileSync(path.join(outbox, file), "utf8");
const emails = () => readdirSync(outbox).filter((f) => f.endsWith(".eml")).sort();
const pendingJobs = async (task: string) =>
  (await db.owner.query("select key from graphile_worker.jobs where task_identifier = $1 and run_at <= now()", [task])).rows;

test("inviteMember queues an email that the worker writes to the outbox as .eml", async () => {
  const inv = await invite(db, owner, org, "grace@example.com", "admin");
  expect(emails()).toEqual([]); // nothing before the worker runs
  await work();
  const files = emails().filter((f) => f.includes(inv.id));
  expect(files).toHaveLength(1);
  const eml = readEml(files[0]);
  expect(eml).toMatch(/^To: grace@example\.com$/m);
  expect(eml).toMatch(/^Subject: You are invited to join Mail Co$/m);
  expect(eml).toContain("Ingrid Inviter invited you to join Mail Co on tenantbase as an admin.");
  // the email carries a token of its own (it proves the address when accepting), not the inviter's
  const mailed = /https:\/\/app\.example\.test\/invitations\/accept\?token=(tbinv_[0-9a-f]{64})/.exec(eml)![1];
  expect(mailed).not.toBe(inv.token);
  expect(eml).not.toContain(inv.token);
  expect(await pendingJobs("send_invitation_email")).toEqual([]);
  // running again sends nothing more (the job is gone; a retry would rewrite the same file)
  await work();
  expect(emails().filter((f) => f.includes(inv.id))).toHaveLength(1);
});

test("a resend before the email went out replaces it: one email, with the new token", async () => {
  const inv = await invite(db, owner, org, "henry@example.com");
  const { rows } = await db.queryAs(owner, "select invitation_token as token from app_public.resend_invitation($1)", [inv.id]);
  const { rows: jobs } = await db.owner.query("select count(*)::int as n from graphile_worker.jobs where key = $1", [`invitation_email:${inv.id}`]);
  expect(jobs[0].n).toBe(1);
  await work();
  const files = emails().filter((f) => f.includes(inv.id));
  expect(files).toHaveLength(1);
  const eml = readEml(files[0]);
  // the mailed token is the one issued with the resend (neither inviter token is mailed)
  const mailed = /\?token=(tbinv_[0-9a-f]{64})/.exec(eml)![1];
  const { rows: current } = await db.owner.query(
    "select mail_token_hash = digest($2::text, 'sha256') as current from app_private.invitation_tokens where invitation_id = $1",
    [inv.id, mailed],
  );
  expect(current).toEqual([{ current: true }]);
  expect(eml).not.toContain(rows[0].token);
  expect(eml).not.toContain(inv.token);
});

test("revoking before the email went out: nothing is sent", async () => {
  const inv = await invite(db, owner, org, "ivan@example.com");
  await db.queryAs(owner, "select app_public.revoke_invitation($1)", [inv.id]);
  await work();
  expect(emails().filter((f) => f.includes(inv.id))).toEqual([]);
});

test("an email job whose invitation was revoked in the meantime sends nothing (the task re-checks)", async () => {
  const inv = await invite(db, owner, org, "judy@example.com");
  // revoke behind the job's back (as if it had already been picked up)
  await db.owner.query("update app_public.invitations set status = 'revoked' where id = $1", [inv.id]);
  await db.owner.query("delete from app_private.invitation_tokens where invitation_id = $1", [inv.id]);
  await work();
  expect(emails().filter((f) => f.includes(inv.id))).toEqual([]);
  const { rows } = await db.owner.query("select key, last_error from graphile_worker.jobs where key = $1", [`invitation_email:${inv.id}`]);
  expect(rows).toEqual([]);
});

test("with SMTP_URL the email goes over SMTP instead of to the outbox", async () => {
  const received: string[] = [];
  const smtp = net.createServer((socket) => {
    let data = false;
    let body = "";
    socket.write("220 test ESMTP\r\n");
    socket.on("data", (chunk) => {
      for (const line of chunk.toString("utf8").split("\r\n")) {
        if (data) {
          if (line === ".") {
            data = false;
            received.push(body);
            socket.write("250 OK queued\r\n");
          } else body += `${line}\n`;
          continue;
        }
        if (line === "") continue;
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === "EHLO" || verb === "HELO") socket.write("250-test\r\n250 8BITMIME\r\n");
        else if (verb === "DATA") {
          data = true;
          socket.write("354 go ahead\r\n");
        } else if (verb === "QUIT") socket.end("221 bye\r\n");
        else socket.write("250 OK\r\n");
      }
    });
  });
  await new Promise<void>((resolve) => smtp.listen(0, "127.0.0.1", resolve));
  const { port } = smtp.address() as net.AddressInfo;
  process.env.SMTP_URL = `smtp://127.0.0.1:${port}/?ignoreTLS=true`;
  try {
    const inv = await invite(db, owner, org, "karl@example.com");
    await work();
    expect(received).toHaveLength(1);
    expect(received[0]).toMatch(/^To: karl@example\.com$/m);
    // the mailed token (its own, not the inviter's), quoted-printable over SMTP
    const body = received[0].replace(/=\r?\n/g, "").replace(/=3D/g, "=");
    expect(body).toMatch(/invitations\/accept\?token=tbinv_[0-9a-f]{64}/);
    expect(body).not.toContain(inv.token);
    expect(emails().filter((f) => f.includes(inv.id))).toEqual([]);
  } finally {
    delete process.env.SMTP_URL;
    await new Promise((resolve) => smtp.close(resolve));
  }
});

test("the expiry job at expires_at marks the invitation expired and frees its seat", async () => {
  const inv = await invite(db, owner, org, "lena@example.com");
  const { rows: job } = await db.owner.query("select run_at from graphile_worker.jobs where key = $1", [`invitation_expiry:${inv.id}`]);
  const { rows: row } = await db.owner.query("select expires_at from app_public.invitations where id = $1", [inv.id]);
  expect(job[0].run_at.getTime()).toBe(row[0].expires_at.getTime());
  await work();
  expect((await db.owner.query("select status::text from app_public.invitations where id = $1", [inv.id])).rows[0].status).toBe("pending");

  // time passes: the invitation's time is up and its job is due
  await db.owner.query("update app_public.invitations set expires_at = now() - interval '1 second' where id = $1", [inv.id]);
  await db.owner.query(
    "select graphile_worker.add_job('expire_invitations', json_build_object('invitationId', $1::text), job_key => $2, run_at => now())",
    [inv.id, `invitation_expiry:${inv.id}`],
  );
  await work();
  expect((await db.owner.query("select status::text from app_public.invitations where id = $1", [inv.id])).rows[0].status).toBe("expired");
  expect(await pendingJobs("expire_invitations")).toEqual([]);
});

test("the daily jobs: hard delete after 30 days, audit retention", async () => {
  const gone = await createOrganization(db, owner, "Gone Co");
  await db.queryAs(owner, "select app_public.delete_organization($1)", [gone.id]);
  await db.owner.query("update app_public.organizations set deleted_at = now() - interval '31 days' where id = $1", [gone.id]);
  await db.owner.query("select graphile_worker.add_job('hard_delete_organizations')");
  await db.owner.query("select graphile_worker.add_job('prune_audit_events')");
  await work();
  expect((await db.owner.query("select 1 from app_public.organizations where id = $1", [gone.id])).rows).toEqual([]);
  expect(await pendingJobs("hard_delete_organizations")).toEqual([]);
  expect(await pendingJobs("prune_audit_events")).toEqual([]);
});

test("the crontab schedules the sweep and the daily jobs, and every task it names exists", () => {
  const items = parseCrontab(readCrontab());
  const names = items.map((i) => i.task);
  expect(names).toEqual(expect.arrayContaining(["expire_invitations", "hard_delete_organizations", "prune_audit_events"]));
  for (const name of names) expect(Object.keys(taskList)).toContain(name);
});
