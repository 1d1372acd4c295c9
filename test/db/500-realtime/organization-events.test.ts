// The organization channel: members joining, changing role and leaving; invitations made and
// changed; plan changes (direct or through the Stripe subscription); renames and deletion; credit
// alerts firing.
// Each notification is a kind and ids.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createUser, twoTenants } from "../../helpers/fixtures.ts";
import { listenInSql } from "../../helpers/realtime.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

test("each change notifies its kind with ids only", async () => {
  const { a } = await twoTenants(db);
  const channel = `tb:organization:${a.org.id}`;
  const listener = await listenInSql(db.rootUrl, [channel]);
  const kinds = async () => (await listener.flush()).splice(0).map((n) => n.payload);
  try {
    await db.owner.query("update app_public.organizations set plan_id = 'pro' where id = $1", [a.org.id]);
    expect(await kinds()).toEqual([{ kind: "plan_changed" }]);
    const user = await createUser(db);
    await db.owner.query("insert into app_public.organization_members (organization_id, user_id) values ($1, $2)", [a.org.id, user.userId]);
    expect(await kinds()).toEqual([{ kind: "member_joined", user_id: user.userId }]);
    await db.queryAs(a.owner, "select app_public.change_member_role($1, $2, 'admin')", [a.org.id, user.userId]);
    expect(await kinds()).toEqual([{ kind: "member_role_changed", user_id: user.userId }]);
    // an update that keeps the role: nothing
    await db.owner.query("update app_public.organization_members set updated_at = now() where user_id = $1", [user.userId]);
    expect(await kinds()).toEqual([]);
    await db.queryAs(a.owner, "select app_public.remove_member($1, $2)", [a.org.id, user.userId]);
    expect(await kinds()).toEqual([{ kind: "member_left", user_id: user.userId }]);
    const invited = await db.queryAs(a.owner, "select (i.invitation).id as id from app_public.invite_member($1, 'x@example.com') i", [a.org.id]);
    const invitationId = invited.rows[0].id;
    expect(await kinds()).toEqual([{ kind: "invitation_created", invitation_id: invitationId }]);
    await db.queryAs(a.owner, "select app_public.revoke_invitation($1)", [invitationId]);
    expect(await kinds()).toEqual([{ kind: "invitation_updated", invitation_id: invitationId }]);
    await db.queryAs(a.owner, "update app_public.organizations set name = 'Renamed' where id = $1", [a.org.id]);
    expect(await kinds()).toEqual([{ kind: "organization_updated" }]);
    await db.owner.query(
      `insert into app_public.subscriptions (organization_id, stripe_customer_id, stripe_subscription_id, status, plan_id,
         stripe_created_at, last_event_created_at, last_event_rank, last_event_id)
       values ($1, 'cus_rt', 'sub_rt', 'active', 'pro', now(), now(), 0, 'evt_rt')`,
      [a.org.id],
    );
    expect(await kinds()).toEqual([{ kind: "plan_changed" }]);
  } finally {
    await listener.end();
  }
});

test("a credit alert that fires notifies credit_alert with its id; a spend that fires none notifies nothing here", async () => {
  const { a } = await twoTenants(db);
  await db.owner.query("select app_private.grant_credits($1, 1000, 'purchase', null, null)", [a.org.id]);
  const { rows: account } = await db.owner.query("select available::int from app_public.credit_accounts where organization_id = $1", [a.org.id]);
  await db.queryAs(a.owner, "select app_public.set_credit_alert_threshold($1, 'low_balance', $2)", [a.org.id, account[0].available - 100]);
  const channel = `tb:organization:${a.org.id}`;
  const listener = await listenInSql(db.rootUrl, [channel]);
  const kinds = async () => (await listener.flush()).splice(0).map((n) => n.payload);
  try {
    await db.queryAs(a.member, "select app_public.reserve_credits($1, 50, 'rt-1')", [a.org.id]);
    expect(await kinds()).toEqual([]);
    await db.queryAs(a.member, "select app_public.reserve_credits($1, 50, 'rt-2')", [a.org.id]);
    const { rows } = await db.owner.query("select id from app_public.credit_alerts where organization_id = $1", [a.org.id]);
    expect(await kinds()).toEqual([{ kind: "credit_alert", credit_alert_id: rows[0].id }]);
  } finally {
    await listener.end();
  }
});
