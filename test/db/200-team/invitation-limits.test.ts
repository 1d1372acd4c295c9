// db/functions/200-team/invitation-limits.sql: how many invitation emails an organization may
// send, per hour and to one address per day, by its plan; counted per organization.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createOrganization, createUser } from "../../helpers/fixtures.ts";
import { codeOf } from "../../helpers/codes.ts";
import { setPlan } from "../../helpers/team.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const send = (organizationId: string, email: string) =>
  db.owner.query("select app_private.count_invitation_send($1, $2)", [organizationId, email]);
/** Moves sends into the past (as a superuser: the audit trigger keeps created_at otherwise). */
const age = (organizationId: string, interval: string, except = "") =>
  db.root.query(`begin; set local session_replication_role = replica;
    update app_private.invitation_sends set created_at = now() - interval '${interval}'
     where organization_id = '${organizationId}' and email <> '${except}'; commit;`);
const sends = async (organizationId: string) =>
  (await db.owner.query("select count(*)::int as n from app_private.invitation_sends where organization_id = $1", [organizationId])).rows[0].n;

test("the plan's per-address daily limit, then INVITATION_LIMIT_REACHED; other addresses and organizations are not affected", async () => {
  const owner = await createUser(db);
  const org = (await createOrganization(db, owner, "Limits A")).id;
  const other = (await createOrganization(db, owner, "Limits B")).id;
  const { rows } = await db.owner.query("select max_invitations_per_email_per_day as n from app_public.plans where id = 'free'");
  for (let i = 0; i < rows[0].n; i++) await send(org, "a@example.com");
  expect(await codeOf(send(org, "A@EXAMPLE.COM"))).toBe("INVITATION_LIMIT_REACHED"); // citext: one address
  await send(org, "b@example.com");
  await send(other, "a@example.com");
  expect(await sends(org)).toBe(rows[0].n + 1);
});

test("the hourly limit counts every address; sends older than the window do not count and are pruned after two days", async () => {
  const owner = await createUser(db);
  const org = (await createOrganization(db, owner, "Hourly")).id;
  await setPlan(db, org, "pro");
  await db.owner.query("update app_public.plans set max_invitations_per_hour = 3 where id = 'pro'");
  try {
    for (const email of ["1@x.io", "2@x.io", "3@x.io"]) await send(org, email);
    expect(await codeOf(send(org, "4@x.io"))).toBe("INVITATION_LIMIT_REACHED");
    await age(org, "61 minutes");
    await send(org, "4@x.io");
    await age(org, "3 days", "4@x.io");
    await send(org, "5@x.io");
    expect(await sends(org)).toBe(2); // the three old ones were pruned
  } finally {
    await db.owner.query("update app_public.plans set max_invitations_per_hour = 100 where id = 'pro'");
  }
});

test("a plan without limits sends any number; app roles cannot read or write the counts", async () => {
  const owner = await createUser(db);
  const org = (await createOrganization(db, owner, "Unlimited")).id;
  await setPlan(db, org, "enterprise");
  await db.owner.query("update app_public.plans set max_invitations_per_hour = null, max_invitations_per_email_per_day = null where id = 'enterprise'");
  try {
    for (let i = 0; i < 12; i++) await send(org, "same@example.com");
  } finally {
    await db.owner.query("update app_public.plans set max_invitations_per_hour = 500, max_invitations_per_email_per_day = 5 where id = 'enterprise'");
  }
  await expect(db.queryAs(owner, "select * from app_private.invitation_sends")).rejects.toMatchObject({ code: "42501" });
  await expect(db.queryAs(owner, "select app_private.count_invitation_send($1, 'x@example.com')", [org])).rejects.toMatchObject({ code: "42501" });
});
