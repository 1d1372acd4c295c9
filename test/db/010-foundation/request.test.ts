// app_hidden.start_request() (db/functions/010-foundation/request.sql): the session check in the
// request's own transaction, the caller's organizations handed to the policies as settings, and
// membership changes inside the transaction visible to its later statements.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { addMember, createOrganization, createUser, twoTenants } from "../../helpers/fixtures.ts";
import { createUserWithEmail, expectCode, invite, queryAsApiKey } from "../../helpers/team.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const settings = "select current_setting('tenantbase.organization_ids')::uuid[] as member, current_setting('tenantbase.admin_organization_ids')::uuid[] as admin";
const sorted = (ids: string[]) => [...ids].sort();

test("a user's organizations (member and admin) are in the transaction's settings", async () => {
  const cast = await twoTenants(db);
  const other = await createOrganization(db, cast.a.member, "Member's Own");
  const { rows } = await db.queryAs(cast.a.member, settings);
  expect(sorted(rows[0].member)).toEqual(sorted([cast.a.org.id, other.id]));
  expect(rows[0].admin).toEqual([other.id]);
  const anonymous = await db.queryAs(null, settings);
  expect(anonymous.rows[0]).toEqual({ member: [], admin: [] });
});

test("one organization with a sign-in policy among several: only it is left out, the others stay (both lookups agree)", async () => {
  // start_request() takes the memberships alone unless one of the caller's organizations requires
  // SSO or MFA; then the lookup with the policies decides for all of them.
  const user = await createUser(db);
  const plain = await createOrganization(db, user, "No Policy");
  const strict = await createOrganization(db, user, "MFA Required");
  const later = await createOrganization(db, user, "MFA Later");
  const member = async () => sorted((await db.queryAs(user, settings)).rows[0].member);
  expect(await member()).toEqual(sorted([plain.id, strict.id, later.id]));
  await db.owner.query("update app_public.organizations set mfa_required_at = now() - interval '1 second' where id = $1", [strict.id]);
  await db.owner.query("update app_public.organizations set mfa_required_at = now() + interval '7 days' where id = $1", [later.id]);
  expect(await member()).toEqual(sorted([plain.id, later.id]));
  const admin = (await db.queryAs(user, settings)).rows[0].admin;
  expect(sorted(admin)).toEqual(sorted([plain.id, later.id]));
  await db.owner.query("update app_public.organizations set mfa_required_at = null where id = any($1)", [[strict.id, later.id]]);
  expect(await member()).toEqual(sorted([plain.id, strict.id, later.id]));
});

test("a logged-out or expired session is refused with INVALID_TOKEN on the next transaction", async () => {
  const user = await createUser(db);
  await createOrganization(db, user, "Soon Gone");
  await db.queryAs(user, "select app_public.logout()");
  await expectCode(db.queryAs(user, "select 1"), "INVALID_TOKEN");
  const expired = await createUser(db);
  await db.owner.query("update app_private.sessions set expires_at = now() - interval '1 second' where id = $1", [expired.sessionId]);
  await expectCode(db.queryAs(expired, "select 1"), "INVALID_TOKEN");
  // another user's session id is not this user's session
  const a = await createUser(db);
  const b = await createUser(db);
  await expectCode(db.queryAs({ userId: a.userId, sessionId: b.sessionId }, "select 1"), "INVALID_TOKEN");
});

test("start_request() and session_is_live() decide from one rule (live_sessions): revoked, expired, idle and another user's session are refused alike", async () => {
  const [{ idle }] = (await db.owner.query("select extract(epoch from session_idle_timeout)::int as idle from app_private.account_settings where id")).rows;
  const cases: [string, string | null][] = [
    ["live", null],
    ["revoked", "update app_private.sessions set revoked_at = now() where id = $1"],
    ["expired", "update app_private.sessions set expires_at = now() - interval '1 second' where id = $1"],
    ["idle", `update app_private.sessions set last_used_at = now() - interval '${idle + 1} seconds' where id = $1`],
    ["idle, but used just within the timeout", `update app_private.sessions set last_used_at = now() - interval '${idle - 5} seconds' where id = $1`],
  ];
  for (const [label, change] of cases) {
    const user = await createUser(db);
    if (change) await db.owner.query(change, [user.sessionId]);
    const { rows } = await db.owner.query("select app_hidden.session_is_live($1, $2) as live", [user.sessionId, user.userId]);
    const request = db.queryAs(user, "select 1");
    if (label === "live" || label.startsWith("idle, but")) {
      expect([label, rows[0].live]).toEqual([label, true]);
      await request;
    } else {
      expect([label, rows[0].live]).toEqual([label, false]);
      await expectCode(request, "INVALID_TOKEN");
    }
  }
  // A request records a stale use (at most once a minute), as session_is_live() does.
  const user = await createUser(db);
  await db.owner.query("update app_private.sessions set last_used_at = now() - interval '2 minutes' where id = $1", [user.sessionId]);
  await db.queryAs(user, "select 1");
  const { rows } = await db.owner.query("select last_used_at > now() - interval '1 minute' as recorded from app_private.sessions where id = $1", [user.sessionId]);
  expect(rows[0].recorded).toBe(true);
});

test("an API key sees its organization; once revoked it sees none", async () => {
  const cast = await twoTenants(db);
  await db.owner.query(
    "update app_public.organization_settings set features = features || '{\"apiAccessEnabled\": true}' where organization_id = $1",
    [cast.a.org.id],
  );
  const { rows: keys } = await db.queryAs(cast.a.admin, "select (k.api_key).id from app_public.create_api_key($1, 'ci', 'member') k", [cast.a.org.id]);
  const keyId = keys[0].id;
  const seen = await queryAsApiKey(db, keyId, settings);
  expect(seen.rows[0]).toEqual({ member: [cast.a.org.id], admin: [] });
  await db.queryAs(cast.a.admin, "select app_public.revoke_api_key($1)", [keyId]);
  expect((await queryAsApiKey(db, keyId, settings)).rows[0]).toEqual({ member: [], admin: [] });
  expect((await queryAsApiKey(db, keyId, "select * from app_public.organization_members")).rows).toEqual([]);
});

test("an API key's role is capped at its creator's current role, read in the request's own transaction", async () => {
  const cast = await twoTenants(db);
  const { rows: keys } = await db.queryAs(cast.a.admin, "select (k.api_key).id from app_public.create_api_key($1, 'ci', 'admin') k", [cast.a.org.id]);
  const keyId = keys[0].id;
  expect((await queryAsApiKey(db, keyId, settings)).rows[0]).toEqual({ member: [cast.a.org.id], admin: [cast.a.org.id] });
  await db.owner.query("update app_public.organization_members set role = 'member' where organization_id = $1 and user_id = $2", [cast.a.org.id, cast.a.admin.userId]);
  expect((await queryAsApiKey(db, keyId, settings)).rows[0]).toEqual({ member: [cast.a.org.id], admin: [] });
  // removed: nothing, even before (or without) the revocation
  await db.owner.query("alter table app_public.organization_members disable trigger _210_revoke_api_keys");
  try {
    await db.owner.query("delete from app_public.organization_members where organization_id = $1 and user_id = $2", [cast.a.org.id, cast.a.admin.userId]);
  } finally {
    await db.owner.query("alter table app_public.organization_members enable trigger _210_revoke_api_keys");
  }
  expect((await queryAsApiKey(db, keyId, settings)).rows[0]).toEqual({ member: [], admin: [] });
});

test("createOrganization: the new organization is visible to the same transaction's later statements", async () => {
  const user = await createUser(db);
  const result = await db.as(user, async (client) => {
    const created = await client.query("select id from app_public.create_organization('Fresh Org')");
    const visible = await client.query("select id from app_public.organizations");
    const account = await client.query("select organization_id from app_public.credit_accounts");
    const ids = await client.query(settings);
    return { id: created.rows[0].id, visible: visible.rows.map((r) => r.id), account: account.rows.map((r) => r.organization_id), ids: ids.rows[0] };
  });
  expect(result.visible).toEqual([result.id]);
  expect(result.account).toEqual([result.id]);
  expect(result.ids).toEqual({ member: [result.id], admin: [result.id] });
});

test("acceptInvitation, leaving and deleting: later statements of the transaction follow the change", async () => {
  const inviter = await createUser(db);
  const team = await createOrganization(db, inviter, "Team");
  const invitee = await createUserWithEmail(db, `invitee-${Date.now()}@example.com`);
  const invitation = await invite(db, inviter, team.id, invitee.email, "member");
  const joined = await db.as(invitee, async (client) => {
    const before = await client.query("select id from app_public.organizations");
    await client.query("select app_public.accept_invitation($1)", [invitation.token]);
    const after = await client.query("select id from app_public.organizations");
    const members = await client.query("select count(*)::int as n from app_public.organization_members where organization_id = $1", [team.id]);
    return { before: before.rows.length, after: after.rows.map((r) => r.id), members: members.rows[0].n };
  });
  expect(joined).toEqual({ before: 0, after: [team.id], members: 2 });

  const left = await db.as(invitee, async (client) => {
    await client.query("select app_public.leave_organization($1)", [team.id]);
    return (await client.query("select id from app_public.organizations")).rows.length;
  });
  expect(left).toBe(0);

  const owner = await createUser(db);
  const org = await createOrganization(db, owner, "To Delete");
  const afterDelete = await db.as(owner, async (client) => {
    await client.query("select app_public.delete_organization($1)", [org.id]);
    return (await client.query(settings)).rows[0];
  });
  expect(afterDelete).toEqual({ member: [], admin: [] });

  // a role change made by someone else's transaction shows in the member's next one
  const promoted = await createUser(db);
  const org2 = await createOrganization(db, owner, "Promotions");
  await addMember(db, org2.id, promoted, "member");
  await db.owner.query("update app_public.organization_members set role = 'admin' where organization_id = $1 and user_id = $2", [org2.id, promoted.userId]);
  expect((await db.queryAs(promoted, settings)).rows[0]).toEqual({ member: [org2.id], admin: [org2.id] });
});

test("without start_request, a tenant table refuses an app_user statement (closed, not empty)", async () => {
  const user = await createUser(db);
  await createOrganization(db, user, "Closed");
  const client = await db.auth.connect();
  try {
    await client.query("begin");
    await client.query("select set_config('role', 'app_user', true), set_config('jwt.claims.user_id', $1, true)", [user.userId]);
    await expect(client.query("select * from app_public.generations")).rejects.toThrow();
  } finally {
    await client.query("rollback");
    client.release();
  }
});

test("tenant policies are plain expressions: no subquery and no function of ours (the form Citus accepts)", async () => {
  const { rows } = await db.owner.query(`
    select p.tablename, p.policyname, coalesce(p.qual, '') || ' ' || coalesce(p.with_check, '') as expr
    from pg_policies p
    join information_schema.columns c on c.table_schema = p.schemaname and c.table_name = p.tablename and c.column_name = 'organization_id'
    where p.schemaname = 'app_public' and 'app_user' = any (p.roles)`);
  expect(rows.length).toBeGreaterThan(10);
  const offenders = rows.filter((r) => /\bselect\b/i.test(r.expr) || /\bapp_(public|hidden|private)\./.test(r.expr)).map((r) => `${r.tablename}.${r.policyname}: ${r.expr}`);
  expect(offenders).toEqual([]);
});
