// Recording a fired alert (db/functions/140-credit-controls/alert-records.sql): one row and one
// email job keyed by the alert; a grant's expiry notice recorded once; the recipients are the
// organization's admins and owners with a verified address who have not turned the emails off;
// the per-recipient jobs are queued once per alert; an email is read only for a current
// recipient.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { addMember, createUser, twoTenants } from "../../helpers/fixtures.ts";
import { setPlan } from "../../helpers/team.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const jobs = (org: string) =>
  db.owner.query(
    `select j.key, j.payload from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id
     where t.identifier = 'send_credit_alert_email' and j.payload->>'organizationId' = $1 order by j.key`, [org]).then((r) => r.rows);

test("record_credit_alert writes one row and queues one job keyed credit_alert:<id>; a grant is noticed once", async () => {
  const { a } = await twoTenants(db);
  const { rows } = await db.owner.query(
    "select app_private.record_credit_alert($1, 'low_balance', balance_at_most => 10, available => 5) as id", [a.org.id]);
  const id = rows[0].id;
  expect(await jobs(a.org.id)).toEqual([{ key: `credit_alert:${id}`, payload: { organizationId: a.org.id, alertId: id } }]);
  const { rows: grant } = await db.owner.query(
    "select grant_id from app_private.grant_credits_as($1, 100, 'promotional', 'promo', now() + interval '3 days', null)", [a.org.id]);
  const grantId = grant[0].grant_id;
  const first = await db.owner.query(
    "select app_private.record_credit_alert($1, 'grant_expiring', grant_id => $2, grant_remaining => 100) as id", [a.org.id, grantId]);
  const second = await db.owner.query(
    "select app_private.record_credit_alert($1, 'grant_expiring', grant_id => $2, grant_remaining => 100) as id", [a.org.id, grantId]);
  expect(first.rows[0].id).not.toBeNull();
  expect(second.rows[0].id).toBeNull();
  expect(await jobs(a.org.id)).toHaveLength(2);
  const { rows: all } = await db.owner.query("select kind::text from app_public.credit_alerts where organization_id = $1 order by fired_at, id", [a.org.id]);
  expect(all).toEqual([{ kind: "low_balance" }, { kind: "grant_expiring" }]);
});

test("recipients: admins and owners, verified, emails on; the per-recipient jobs are queued once; the email is read only for a recipient", async () => {
  const { a, b } = await twoTenants(db);
  await setPlan(db, a.org.id, "enterprise");
  const unverified = await createUser(db, "Unverified Admin");
  await db.owner.query("update app_public.users set email_verified_at = null where id = $1", [unverified.userId]);
  await addMember(db, a.org.id, unverified, "admin");
  const optedOut = await createUser(db, "Quiet Admin");
  await addMember(db, a.org.id, optedOut, "admin");
  await db.queryAs(optedOut, "select app_public.set_credit_alert_emails(false)");
  const recipients = await db.owner.query("select user_id from app_private.credit_alert_recipients($1)", [a.org.id]);
  expect(recipients.rows.map((r) => r.user_id).sort()).toEqual([a.owner.userId, a.admin.userId].sort());

  const { rows } = await db.owner.query(
    "select app_private.record_credit_alert($1, 'low_balance', balance_at_most => 10, available => 5) as id", [a.org.id]);
  const id = rows[0].id;
  expect((await db.owner.query("select app_private.queue_credit_alert_emails($1, $2) as n", [a.org.id, id])).rows[0].n).toBe(2);
  expect((await db.owner.query("select app_private.queue_credit_alert_emails($1, $2) as n", [a.org.id, id])).rows[0].n).toBe(0);
  // another organization's id with this alert: nothing
  expect((await db.owner.query("select app_private.queue_credit_alert_emails($1, $2) as n", [b.org.id, id])).rows[0].n).toBe(0);
  const keys = (await jobs(a.org.id)).map((j) => j.key).sort();
  expect(keys).toEqual([`credit_alert:${id}`, `credit_alert:${id}:${a.owner.userId}`, `credit_alert:${id}:${a.admin.userId}`].sort());

  const email = (userId: string, org = a.org.id) =>
    db.owner.query("select email, kind::text, balance_at_most::int, available::int, organization_name from app_private.credit_alert_email($1, $2, $3)", [org, id, userId]).then((r) => r.rows);
  expect(await email(a.admin.userId)).toEqual([{ email: a.admin.email, kind: "low_balance", balance_at_most: 10, available: 5, organization_name: "Alpha Org" }]);
  expect(await email(a.member.userId)).toEqual([]);
  expect(await email(optedOut.userId)).toEqual([]);
  expect(await email(b.owner.userId)).toEqual([]);
  expect(await email(b.owner.userId, b.org.id)).toEqual([]);
  // demoted after the alert: no email
  await db.owner.query("update app_public.organization_members set role = 'member' where organization_id = $1 and user_id = $2", [a.org.id, a.admin.userId]);
  expect(await email(a.admin.userId)).toEqual([]);
});

test("credit_alerts: members read their organization's, nobody writes them; other organizations see none", async () => {
  const { a, b } = await twoTenants(db);
  await db.owner.query("select app_private.record_credit_alert($1, 'low_balance', balance_at_most => 10, available => 5)", [a.org.id]);
  expect((await db.queryAs(a.member, "select kind::text from app_public.credit_alerts")).rows).toEqual([{ kind: "low_balance" }]);
  expect((await db.queryAs(b.owner, "select id from app_public.credit_alerts where organization_id = $1", [a.org.id])).rows).toEqual([]);
  for (const sql of [
    "update app_public.credit_alerts set available = 0",
    "delete from app_public.credit_alerts",
    `insert into app_public.credit_alerts (organization_id, kind) values ('${a.org.id}', 'low_balance')`,
  ]) {
    await expect(db.queryAs(a.owner, sql)).rejects.toMatchObject({ code: "42501" });
  }
  await expect(db.queryAs(a.owner, "select app_private.record_credit_alert($1, 'low_balance')", [a.org.id])).rejects.toMatchObject({ code: "42501" });
});

test("at most 50 threshold alerts per organization per UTC day; grant notices and other organizations are not counted", async () => {
  const { a, b } = await twoTenants(db);
  // away from midnight UTC, where the day turns
  const { rows: left } = await db.owner.query(
    "select extract(epoch from app_hidden.spend_cap_window_end('day', app_hidden.spend_cap_window_start('day', now())) - clock_timestamp()) as s");
  if (Number(left[0].s) < 30) await new Promise((resolve) => setTimeout(resolve, (Number(left[0].s) + 1) * 1000));
  const record = (org: string) =>
    db.owner.query("select app_private.record_credit_alert($1, 'cap_used', percent => 50::smallint) as id", [org]).then((r) => r.rows[0].id);
  for (let i = 0; i < 50; i++) expect(await record(a.org.id)).not.toBeNull();
  expect(await record(a.org.id)).toBeNull();
  expect(await record(b.org.id)).not.toBeNull();
  const { rows: grant } = await db.owner.query(
    "select grant_id from app_private.grant_credits_as($1, 100, 'promotional', 'promo', now() + interval '3 days', null)", [a.org.id]);
  expect((await db.owner.query("select app_private.record_credit_alert($1, 'grant_expiring', grant_id => $2) as id", [a.org.id, grant[0].grant_id])).rows[0].id).not.toBeNull();
  // yesterday's do not count
  await db.owner.query("update app_public.credit_alerts set fired_at = fired_at - interval '1 day' where organization_id = $1", [a.org.id]);
  expect(await record(a.org.id)).not.toBeNull();
});

test("an organization erased (the 30-day hard delete) takes its thresholds and alerts with it", async () => {
  const { a } = await twoTenants(db);
  const cap = (await db.queryAs(a.owner, "select id from app_public.set_spend_cap($1, 'day', 100)", [a.org.id])).rows[0].id;
  const t = (await db.queryAs(a.owner, "select id from app_public.set_credit_alert_threshold($1, 'cap_used', null, $2, 50)", [a.org.id, cap])).rows[0].id;
  await db.owner.query("select app_private.record_credit_alert($1, 'cap_used', threshold_id => $2, cap_id => $3, percent => 50::smallint)", [a.org.id, t, cap]);
  await db.owner.query("update app_public.organizations set deleted_at = now() - interval '31 days' where id = $1", [a.org.id]);
  expect((await db.owner.query("select app_private.hard_delete_organizations() as n")).rows[0].n).toBeGreaterThanOrEqual(1);
  for (const table of ["app_public.credit_alerts", "app_public.credit_alert_thresholds"]) {
    expect((await db.owner.query(`select count(*)::int as n from ${table} where organization_id = $1`, [a.org.id])).rows[0].n).toBe(0);
  }
});

test("each recorded alert is a webhook event for the organization's endpoints, in the same transaction", async () => {
  const t = await twoTenants(db);
  await db.queryAs(t.a.admin, "select app_public.create_webhook_endpoint($1, 'https://hooks.example.com/credits', '', '{credits.low_balance,credits.cap_used,credits.expiring}')", [t.a.org.id]);
  const messages = () => db.owner.query(
    `select event_type, payload from app_public.webhook_messages
     where organization_id = $1 and event_type in ('credits.low_balance', 'credits.cap_used', 'credits.expiring') order by created_at, id`,
    [t.a.org.id]).then((r) => r.rows);

  // rolled back: neither the alert nor its event
  const client = await db.owner.connect();
  try {
    await client.query("begin");
    await client.query("select app_private.record_credit_alert($1, 'low_balance', balance_at_most => 10, available => 5)", [t.a.org.id]);
    await client.query("rollback");
  } finally {
    client.release();
  }
  expect(await messages()).toEqual([]);

  const low = (await db.owner.query(
    "select app_private.record_credit_alert($1, 'low_balance', balance_at_most => 10, available => 5) as id", [t.a.org.id])).rows[0].id;
  const { rows: grant } = await db.owner.query(
    "select grant_id from app_private.grant_credits_as($1, 100, 'promotional', 'promo', '2030-01-08T00:00:00Z', null)", [t.a.org.id]);
  const expiring = (await db.owner.query(
    "select app_private.record_credit_alert($1, 'grant_expiring', grant_id => $2, grant_remaining => 100, grant_expires_at => '2030-01-08T00:00:00Z') as id",
    [t.a.org.id, grant[0].grant_id])).rows[0].id;
  expect(await messages()).toEqual([
    { event_type: "credits.low_balance", payload: { alert_id: low, threshold_id: null, balance: 5, threshold: 10 } },
    { event_type: "credits.expiring", payload: { alert_id: expiring, grant_id: grant[0].grant_id, remaining: 100, expires_at: "2030-01-08T00:00:00+00:00" } },
  ]);
  // the other organization, without endpoints, gets nothing of it
  expect((await db.owner.query("select count(*)::int as n from app_public.webhook_messages where organization_id = $1", [t.b.org.id])).rows[0].n).toBe(0);
});
