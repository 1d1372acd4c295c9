// Outbound webhooks with the real graphile-worker and a real HTTP receiver that verifies every
// request with the npm package standardwebhooks: delivery, secret rotation (both signatures for
// 24 hours, then only the new one), retries on failures, 410 Gone, exhausted retries, disabling
// after days of failures (admins emailed), redirects not followed, replay and recovery with the
// same webhook-id, the test event, and the SSRF check at delivery.

import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { Logger, parseCrontab, runOnce } from "graphile-worker";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { createUser, twoTenants, addMember } from "../helpers/fixtures.ts";
import { startReceiver, type Receiver } from "../helpers/webhook-receiver.ts";
import { setPlan } from "../helpers/team.ts";
import { taskList } from "../../workers/tasks/index.ts";
import { readCrontab, startWorker } from "../../workers/runner.ts";

let db: TestDatabase;
let receiver: Receiver;
let workerPool: pg.Pool;
let t: Awaited<ReturnType<typeof twoTenants>>;
let outbox: string;
const ENV = {
  WEBHOOK_ALLOW_PRIVATE_ADDRESSES: "true",
  WEBHOOK_RETRY_SCHEDULE: "0,0,0",
  WEBHOOK_RETRY_JITTER_PERCENT: "0",
  WEBHOOK_TIMEOUT_MS: "2000",
  OUTBOX_DIR: "",
  SMTP_URL: undefined,
} as Record<string, string | undefined>;
const saved: Record<string, string | undefined> = {};
const logger = new Logger(() => () => {});

beforeAll(async () => {
  db = await createTestDatabase();
  workerPool = new pg.Pool({ connectionString: db.ownerUrl, max: 4 });
  workerPool.on("error", () => {});
  workerPool.on("connect", (client) => client.on("error", () => {}));
  receiver = await startReceiver();
  t = await twoTenants(db);
  await setPlan(db, t.a.org.id, "enterprise");
  await setPlan(db, t.b.org.id, "enterprise");
  outbox = mkdtempSync(path.join(os.tmpdir(), "tenantbase-webhooks-"));
  ENV.OUTBOX_DIR = outbox;
  for (const [k, v] of Object.entries(ENV)) {
    saved[k] = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await db.owner.query("update app_private.webhook_settings set allow_http = true, allow_private_addresses = true");
});
afterAll(async () => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await receiver?.close();
  await workerPool?.end();
  rmSync(outbox, { recursive: true, force: true });
  await db?.drop();
});

/** Runs every due job with the real worker until none is left. */
async function work(): Promise<void> {
  for (let i = 0; i < 200; i++) {
    await runOnce({ pgPool: workerPool, taskList, concurrency: 2, noHandleSignals: true, logger });
    const { rows } = await db.owner.query("select count(*)::int as n from graphile_worker.jobs where run_at <= now() and attempts < max_attempts");
    if (rows[0].n > 0) await new Promise((resolve) => setTimeout(resolve, 20));
    if (rows[0].n === 0) {
      const failed = await db.owner.query("select task_identifier, last_error from graphile_worker.jobs where last_error is not null");
      if (failed.rows.length > 0) throw new Error(`failed jobs: ${JSON.stringify(failed.rows)}`);
      return;
    }
  }
  throw new Error("jobs kept coming");
}

async function endpoint(actor: any, org: string, pathName: string, types: string[] = []) {
  const { rows } = await db.queryAs(
    actor,
    "select (r.webhook_endpoint).id, r.secret from app_public.create_webhook_endpoint($1, $2, '', $3, '{\"X-Tenant\": \"custom\"}') r",
    [org, receiver.url(pathName), types],
  );
  return rows[0] as { id: string; secret: string };
}
const attempts = async (endpointId: string) =>
  (
    await db.owner.query(
      `select a.status_code, a.error, d.status, d.message_id from app_public.webhook_attempts a
       join app_public.webhook_deliveries d on d.organization_id = a.organization_id and d.id = a.delivery_id
       where d.endpoint_id = $1 order by a.created_at, a.id`,
      [endpointId],
    )
  ).rows;
const at = (p: string) => receiver.received.filter((r) => r.path === p);

test("an event is delivered once, signed so that standardwebhooks verifies it, with the custom header", async () => {
  const ep = await endpoint(t.a.admin, t.a.org.id, "/basic", ["member.joined"]);
  receiver.verifyWith(ep.secret);
  const user = await createUser(db);
  await addMember(db, t.a.org.id, user);
  // an event it does not subscribe to
  await db.queryAs(t.a.owner, "select app_public.change_member_role($1, $2, 'admin')", [t.a.org.id, user.userId]);
  await work();
  expect(at("/basic")).toHaveLength(1);
  const got = at("/basic")[0];
  expect(got.verifiedBy).toEqual([ep.secret]);
  expect(got.headers["x-tenant"]).toBe("custom");
  expect(got.headers["content-type"]).toBe("application/json");
  const body = JSON.parse(got.body);
  expect(body).toMatchObject({ type: "member.joined", data: { user_id: user.userId, role: "member" } });
  const log = await attempts(ep.id);
  expect(log).toEqual([{ status_code: 200, error: null, status: "succeeded", message_id: got.id }]);
  // the delivery log is readable by a member, not by the other organization
  expect((await db.queryAs(t.a.member, "select status_code, duration_ms >= 0 as timed, response_body from app_public.webhook_attempts")).rows).toEqual([
    { status_code: 200, timed: true, response_body: "ok" },
  ]);
  expect((await db.queryAs(t.b.owner, "select * from app_public.webhook_attempts")).rows).toEqual([]);
  expect((await db.queryAs(t.b.owner, "select * from app_public.webhook_messages")).rows).toEqual([]);
  await db.queryAs(t.a.admin, "select app_public.delete_webhook_endpoint($1)", [ep.id]);
});

test("during a rotation both secrets sign for 24 hours, then only the new one", async () => {
  const ep = await endpoint(t.a.admin, t.a.org.id, "/rotate", ["api_key.created", "api_key.revoked", "webhook.test"]);
  const rotated = await db.queryAs(t.a.admin, "select r.secret from app_public.rotate_webhook_secret($1) r", [ep.id]);
  const fresh = rotated.rows[0].secret as string;
  expect(fresh).not.toBe(ep.secret);
  receiver.verifyWith(ep.secret, fresh);
  await db.queryAs(t.a.admin, "select app_public.send_test_webhook($1)", [ep.id]);
  await work();
  expect(at("/rotate")[0].signatures).toHaveLength(2);
  expect(at("/rotate")[0].verifiedBy).toEqual([ep.secret, fresh]);
  // 24 hours later
  await db.owner.query("update app_private.webhook_endpoint_secrets set expires_at = now() - interval '1 second' where endpoint_id = $1 and expires_at is not null", [ep.id]);
  await db.queryAs(t.a.admin, "select app_public.send_test_webhook($1)", [ep.id]);
  await work();
  expect(at("/rotate")[1].signatures).toHaveLength(1);
  expect(at("/rotate")[1].verifiedBy).toEqual([fresh]);
  expect(JSON.parse(at("/rotate")[1].body)).toMatchObject({ type: "webhook.test", data: { endpoint_id: ep.id } });
  await db.queryAs(t.a.admin, "select app_public.delete_webhook_endpoint($1)", [ep.id]);
});

test("failures are retried with the same webhook-id until a 2xx; exhausted retries fail the delivery", async () => {
  const ep = await endpoint(t.a.admin, t.a.org.id, "/flaky", ["member.left"]);
  receiver.answer("/flaky", { status: 500 }, { status: 302, headers: { location: "http://169.254.169.254/" } }, { status: 429, headers: { "retry-after": "0" } }, { status: 204 });
  const user = await createUser(db);
  await addMember(db, t.a.org.id, user);
  await db.owner.query("delete from app_public.organization_members where organization_id = $1 and user_id = $2", [t.a.org.id, user.userId]);
  await work();
  expect(at("/flaky").map((r) => r.id)).toEqual(Array(4).fill(at("/flaky")[0].id));
  const log = await attempts(ep.id);
  expect(log.map((a) => [a.status_code, a.error])).toEqual([[500, null], [302, "Redirect (302) not followed"], [429, null], [204, null]]);
  expect(log[3].status).toBe("succeeded");
  // the endpoint is healthy again
  expect((await db.owner.query("select failing_since from app_public.webhook_endpoints where id = $1", [ep.id])).rows[0].failing_since).toBeNull();

  // always 500: 1 + 3 retries, then failed
  receiver.answer("/flaky", { status: 500 });
  const other = await createUser(db);
  await addMember(db, t.a.org.id, other);
  await db.owner.query("delete from app_public.organization_members where organization_id = $1 and user_id = $2", [t.a.org.id, other.userId]);
  await work();
  const second = (await attempts(ep.id)).slice(4);
  expect(second.map((a) => a.status_code)).toEqual([500, 500, 500, 500]);
  expect(second[3].status).toBe("failed");
  await db.queryAs(t.a.admin, "select app_public.delete_webhook_endpoint($1)", [ep.id]);
});

test("410 Gone disables the endpoint at once and emails its admins; so does failing for 5 days", async () => {
  const gone = await endpoint(t.b.admin, t.b.org.id, "/gone", ["webhook.test"]);
  receiver.answer("/gone", { status: 410 });
  await db.queryAs(t.b.admin, "select app_public.send_test_webhook($1)", [gone.id]);
  await work();
  expect(at("/gone")).toHaveLength(1);
  expect((await db.owner.query("select disabled_reason from app_public.webhook_endpoints where id = $1", [gone.id])).rows[0].disabled_reason).toBe("gone");

  const failing = await endpoint(t.b.admin, t.b.org.id, "/failing", ["webhook.test"]);
  receiver.answer("/failing", { status: 503 });
  await db.owner.query("update app_public.webhook_endpoints set failing_since = now() - interval '121 hours' where id = $1", [failing.id]);
  await db.queryAs(t.b.admin, "select app_public.send_test_webhook($1)", [failing.id]);
  await work();
  expect(at("/failing")).toHaveLength(1);
  expect((await db.owner.query("select disabled_reason from app_public.webhook_endpoints where id = $1", [failing.id])).rows[0].disabled_reason).toBe("failing");

  const mails = readdirSync(outbox).filter((f) => f.startsWith("webhook-disabled"));
  // owner and admin of B, for each endpoint
  expect(mails).toHaveLength(4);
  const text = mails.map((f) => readFileSync(path.join(outbox, f), "utf8")).join("\n");
  expect(text).toContain("410 Gone");
  expect(text).toContain(receiver.url("/failing"));
  expect(text).not.toContain("whsec_");
});

test("replay and recovery send again with the same webhook-id; recovery covers what a disabled endpoint missed", async () => {
  const ep = await endpoint(t.a.admin, t.a.org.id, "/recover", ["member.joined"]);
  receiver.answer("/recover", { status: 200 });
  const u1 = await createUser(db);
  await addMember(db, t.a.org.id, u1);
  await work();
  expect(at("/recover")).toHaveLength(1);
  const messageId = at("/recover")[0].id;
  expect(await db.queryAs(t.a.admin, "select app_public.replay_webhook_message($1) as n", [messageId]).then((r) => r.rows[0].n)).toBe(1);
  await work();
  expect(at("/recover").map((r) => r.id)).toEqual([messageId, messageId]);

  const since = (await db.owner.query("select now() as now")).rows[0].now;
  await db.queryAs(t.a.admin, "select app_public.disable_webhook_endpoint($1)", [ep.id]);
  const u2 = await createUser(db);
  const u3 = await createUser(db);
  await addMember(db, t.a.org.id, u2);
  await addMember(db, t.a.org.id, u3);
  await work();
  expect(at("/recover")).toHaveLength(2);
  await db.queryAs(t.a.admin, "select app_public.enable_webhook_endpoint($1)", [ep.id]);
  expect(await db.queryAs(t.a.admin, "select app_public.recover_webhook_endpoint($1, $2) as n", [ep.id, since]).then((r) => r.rows[0].n)).toBe(2);
  await work();
  const recovered = at("/recover").slice(2).map((r) => JSON.parse(r.body).data.user_id);
  expect(recovered).toEqual([u2.userId, u3.userId]);
  // nothing left to recover
  expect(await db.queryAs(t.a.admin, "select app_public.recover_webhook_endpoint($1, $2) as n", [ep.id, since]).then((r) => r.rows[0].n)).toBe(0);
  // a member may read the log but not replay
  expect(await db.queryAs(t.a.member, "select app_public.replay_webhook_message($1)", [messageId]).catch((e) => e.detail)).toBe("FORBIDDEN");
  await db.queryAs(t.a.admin, "select app_public.delete_webhook_endpoint($1)", [ep.id]);
});

test("at delivery, an endpoint resolving to an internal address is refused with a clear error (no request made)", async () => {
  process.env.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = "false";
  try {
    const ep = await endpoint(t.a.admin, t.a.org.id, "/ssrf", ["webhook.test"]);
    // a name that resolves to 127.0.0.1, and the literal
    for (const url of [receiver.url("/ssrf").replace("127.0.0.1", "localtest.me"), receiver.url("/ssrf"), receiver.url("/ssrf").replace("127.0.0.1", "[::ffff:127.0.0.1]")]) {
      await db.owner.query("update app_public.webhook_endpoints set url = $2 where id = $1", [ep.id, url]);
      await db.queryAs(t.a.admin, "select app_public.send_test_webhook($1)", [ep.id]);
      await work();
    }
    expect(at("/ssrf")).toHaveLength(0);
    const errors = (await attempts(ep.id)).map((a) => a.error);
    expect(errors.length).toBeGreaterThanOrEqual(3);
    for (const error of errors) expect(error).toMatch(/internal address|ENOTFOUND|EAI_AGAIN/);
    expect(errors.some((e) => /internal address/.test(e))).toBe(true);
  } finally {
    process.env.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = "true";
  }
});

test("a hanging endpoint times out (WEBHOOK_TIMEOUT_MS) and the attempt records it", async () => {
  process.env.WEBHOOK_TIMEOUT_MS = "300";
  process.env.WEBHOOK_RETRY_SCHEDULE = "none";
  try {
    const ep = await endpoint(t.b.admin, t.b.org.id, "/hang", ["webhook.test"]);
    receiver.answer("/hang", { hang: true });
    await db.queryAs(t.b.admin, "select app_public.send_test_webhook($1)", [ep.id]);
    await work();
    expect((await attempts(ep.id)).map((a) => [a.error, a.status])).toEqual([["Timed out after 300 ms", "failed"]]);
  } finally {
    process.env.WEBHOOK_TIMEOUT_MS = "2000";
    process.env.WEBHOOK_RETRY_SCHEDULE = "0,0,0";
  }
});

test("the crontab prunes daily; the prune job drops messages past 30 days with their log", async () => {
  const items = parseCrontab(readCrontab()).filter((item) => item.task === "prune_webhook_messages");
  expect(items).toHaveLength(1);
  expect(taskList.prune_webhook_messages).toBeDefined();
  const ep = await endpoint(t.a.admin, t.a.org.id, "/prune", ["webhook.test"]);
  await db.queryAs(t.a.admin, "select app_public.send_test_webhook($1)", [ep.id]);
  await work();
  await db.root.query(
    `begin; set local session_replication_role = replica;
     update app_public.webhook_messages set created_at = now() - interval '31 days' where organization_id = '${t.a.org.id}'; commit`,
  );
  await db.owner.query("select graphile_worker.add_job('prune_webhook_messages')");
  await work();
  expect((await db.owner.query("select count(*)::int as n from app_public.webhook_messages where organization_id = $1", [t.a.org.id])).rows[0].n).toBe(0);
  expect((await attempts(ep.id))).toEqual([]);
});

test("a starting worker hands its settings to SQL, so creation refuses what delivery would", async () => {
  await db.owner.query("update app_private.webhook_settings set allow_http = false, allow_private_addresses = false");
  const worker = await startWorker({ ownerUrl: db.ownerUrl, taskList: {}, crontab: null, pollInterval: 60_000 });
  await worker.stop();
  // under jest NODE_ENV=test: http allowed; WEBHOOK_ALLOW_PRIVATE_ADDRESSES=true here
  expect((await db.owner.query("select allow_http, allow_private_addresses from app_private.webhook_settings")).rows).toEqual([{ allow_http: true, allow_private_addresses: true }]);
});

test("one endpoint receives its messages one at a time, in the order they were written", async () => {
  const ep = await endpoint(t.b.admin, t.b.org.id, "/ordered", ["credits.low_balance"]);
  const ids: string[] = [];
  for (let i = 0; i < 8; i++) {
    ids.push((await db.owner.query("select app_private.emit_webhook_event($1, 'credits.low_balance', jsonb_build_object('balance', $2::int, 'threshold', 10)) as id", [t.b.org.id, i])).rows[0].id);
  }
  await work();
  expect(at("/ordered").map((r) => r.id)).toEqual(ids);
  expect(receiver.maxInFlight.get("/ordered")).toBe(1);
  await db.queryAs(t.b.admin, "select app_public.delete_webhook_endpoint($1)", [ep.id]);
});

test("one job delivers its endpoint's backlog after its own message, in order, each once, and removes the jobs it served", async () => {
  // (graphile-worker looks for a named queue's next job only at its next poll: one job per
  // message would drain a backlog at one message per poll interval)
  const ep = await endpoint(t.b.admin, t.b.org.id, "/backlog", ["credits.low_balance"]);
  const ids: string[] = [];
  for (let i = 0; i < 30; i++) {
    ids.push((await db.owner.query("select app_private.emit_webhook_event($1, 'credits.low_balance', jsonb_build_object('balance', $2::int, 'threshold', 10)) as id", [t.b.org.id, i])).rows[0].id);
  }
  expect((await db.owner.query("select count(*)::int as n from graphile_worker.jobs where queue_name = $1", [`webhooks:${ep.id}`])).rows[0].n).toBe(30);
  const { rows: first } = await db.owner.query(
    "select id from app_public.webhook_deliveries where organization_id = $1 and endpoint_id = $2 order by created_at, id limit 1", [t.b.org.id, ep.id]);
  // the first message's job, run as the worker runs it
  const helpers = {
    logger,
    withPgClient: async <T>(fn: (client: pg.PoolClient) => Promise<T>) => {
      const client = await workerPool.connect();
      try {
        return await fn(client);
      } finally {
        client.release();
      }
    },
  };
  await taskList.deliver_webhook!({ organizationId: t.b.org.id, deliveryId: first[0].id }, helpers as any);
  expect(at("/backlog").map((r) => r.id)).toEqual(ids);
  expect((await attempts(ep.id)).filter((a) => a.status === "succeeded")).toHaveLength(30);
  // the first job's own row is the worker's to complete; the 29 it served are gone
  expect((await db.owner.query("select count(*)::int as n from graphile_worker.jobs where queue_name = $1", [`webhooks:${ep.id}`])).rows[0].n).toBe(1);
  await work();
  expect(at("/backlog")).toHaveLength(30);
  await db.queryAs(t.b.admin, "select app_public.delete_webhook_endpoint($1)", [ep.id]);
});
