// Organization API keys in SQL (db/functions/200-team/api-keys.sql): creation rules, hashed
// secrets, authenticate_api_key (revoked, expired, deleted organization, API access switched off,
// call counting), the plan's limit of live keys, and how a key ends with its creator (removal,
// demotion, account deletion). What a key may see is in 010-foundation/caller.test.ts.

import { createHash } from "node:crypto";
import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { addMember, createOrganization, createUser, twoTenants } from "../../helpers/fixtures.ts";
import { createApiKey, expectCode, queryAsApiKey, setPlan, tally } from "../../helpers/team.ts";

let db: TestDatabase;
let cast: Awaited<ReturnType<typeof twoTenants>>;
beforeAll(async () => {
  db = await createTestDatabase();
  cast = await twoTenants(db);
});
afterAll(() => db?.drop());

const createKey = (as: any, org: string, name = "backend", role = "member", expiresAt: string | null = null) =>
  createApiKey(db, as, org, name, role, expiresAt);
const authenticate = async (secret: string) =>
  (await db.owner.query("select * from app_hidden.authenticate_api_key($1)", [secret])).rows;
const apiCalls = async (org: string) =>
  Number((await db.owner.query("select api_calls from app_public.usage_counters where organization_id = $1", [org])).rows[0].api_calls);

test("admins and owners create keys; the secret is shown once and stored only as a hash", async () => {
  const key = await createKey(cast.a.admin, cast.a.org.id, "CI runner", "admin");
  expect(key.secret).toMatch(/^tb_live_[0-9a-f]{64}$/);
  expect(key.secret_prefix).toBe(key.secret.slice(0, 12));
  expect(key.role).toBe("admin");
  const { rows } = await db.owner.query("select secret_hash from app_private.api_key_secrets where api_key_id = $1", [key.id]);
  expect(rows[0].secret_hash.toString("hex")).toBe(createHash("sha256").update(key.secret).digest("hex"));
  const { rows: leak } = await db.owner.query(
    "select count(*)::int as n from app_public.api_keys k where to_jsonb(k)::text like '%' || $1 || '%'",
    [key.secret],
  );
  expect(leak[0].n).toBe(0);
  await createKey(cast.a.owner, cast.a.org.id, "owner's key");
  const { rows: audit } = await db.owner.query(
    "select created_by from app_public.audit_events where target_id = $1 and action = 'api_key.created'",
    [key.id],
  );
  expect(audit).toEqual([{ created_by: cast.a.admin.userId }]);
});

test("creation rules: members FORBIDDEN, outsiders NOT_FOUND, no owner keys, a name, a future expiry", async () => {
  await expectCode(createKey(cast.a.member, cast.a.org.id), "FORBIDDEN");
  await expectCode(createKey(cast.b.owner, cast.a.org.id), "NOT_FOUND");
  await expectCode(createKey(cast.a.owner, cast.a.org.id, "x", "owner"), "INVALID_ROLE");
  await expectCode(createKey(cast.a.owner, cast.a.org.id, "   "), "INVALID_NAME");
  await expectCode(createKey(cast.a.owner, cast.a.org.id, "x".repeat(101)), "INVALID_NAME");
  await expectCode(createKey(cast.a.owner, cast.a.org.id, "old", "member", "2000-01-01T00:00:00Z"), "INVALID_EXPIRY");
});

test("authenticate_api_key: live keys answer their organization and count the call; others answer nothing", async () => {
  const key = await createKey(cast.a.admin, cast.a.org.id);
  const before = await apiCalls(cast.a.org.id);
  expect(await authenticate(key.secret)).toEqual([{ api_key_id: key.id, organization_id: cast.a.org.id, role: "member" }]);
  await authenticate(key.secret);
  expect(await apiCalls(cast.a.org.id)).toBe(before + 2);
  const { rows } = await db.owner.query("select last_used_at from app_public.api_keys where id = $1", [key.id]);
  expect(rows[0].last_used_at).toBeInstanceOf(Date);

  expect(await authenticate(key.secret.slice(0, -1) + (key.secret.endsWith("0") ? "1" : "0"))).toEqual([]);
  expect(await authenticate("tb_live_nothex")).toEqual([]);
  expect(await authenticate("")).toEqual([]);

  // revoked: refused at once
  await db.queryAs(cast.a.admin, "select app_public.revoke_api_key($1)", [key.id]);
  expect(await authenticate(key.secret)).toEqual([]);
  expect(await apiCalls(cast.a.org.id)).toBe(before + 2); // refused calls are not counted

  // expired
  const expiring = await createKey(cast.a.admin, cast.a.org.id, "soon", "member", new Date(Date.now() + 60000).toISOString());
  expect(await authenticate(expiring.secret)).toHaveLength(1);
  await db.owner.query("update app_public.api_keys set expires_at = now() - interval '1 second' where id = $1", [expiring.id]);
  expect(await authenticate(expiring.secret)).toEqual([]);

  // API access switched off in the settings, then on again
  const other = await createKey(cast.a.admin, cast.a.org.id);
  await db.queryAs(cast.a.owner, `select app_public.update_organization_settings($1, '{"features": {"apiAccessEnabled": false}}')`, [cast.a.org.id]);
  expect(await authenticate(other.secret)).toEqual([]);
  await expectCode(createKey(cast.a.admin, cast.a.org.id), "API_ACCESS_DISABLED");
  await db.queryAs(cast.a.owner, `select app_public.update_organization_settings($1, '{"features": {"apiAccessEnabled": true}}')`, [cast.a.org.id]);
  expect(await authenticate(other.secret)).toHaveLength(1);
});

test("cross-tenant: B cannot see, revoke or create A's keys", async () => {
  const key = await createKey(cast.a.admin, cast.a.org.id);
  for (const who of [cast.b.owner, cast.b.admin, cast.b.member]) {
    expect((await db.queryAs(who, "select id from app_public.api_keys where organization_id = $1", [cast.a.org.id])).rows).toEqual([]);
    await expectCode(db.queryAs(who, "select app_public.revoke_api_key($1)", [key.id]), "NOT_FOUND");
    await expectCode(createKey(who, cast.a.org.id), "NOT_FOUND");
  }
  expect(await authenticate(key.secret)).toHaveLength(1);
  await expectCode(db.queryAs(cast.a.member, "select app_public.revoke_api_key($1)", [key.id]), "FORBIDDEN");
});

describe("live keys per organization (plans.max_api_keys)", () => {
  const liveKeys = async (org: string) =>
    Number((await db.owner.query("select count(*) from app_public.api_keys where organization_id = $1 and revoked_at is null", [org])).rows[0].count);

  test("at the limit API_KEY_LIMIT_REACHED; a revoked or expired key frees its place", async () => {
    const owner = await createUser(db);
    const org = await createOrganization(db, owner, "Key Limit");
    await db.owner.query("insert into app_public.plans (id, name, max_api_keys) values ('keys2', 'Two keys', 2) on conflict (id) do update set max_api_keys = 2");
    await setPlan(db, org.id, "keys2");
    const first = await createKey(owner, org.id, "one");
    const second = await createKey(owner, org.id, "two", "member", new Date(Date.now() + 3600_000).toISOString());
    const refused = await db.queryAs(owner, "select app_public.create_api_key($1, 'three')", [org.id]).catch((e) => e);
    expect(refused.detail).toBe("API_KEY_LIMIT_REACHED");
    expect(JSON.parse(refused.hint)).toEqual({ limit: 2 });
    await db.queryAs(owner, "select app_public.revoke_api_key($1)", [first.id]);
    const third = await createKey(owner, org.id, "three");
    await expectCode(createKey(owner, org.id, "four"), "API_KEY_LIMIT_REACHED");
    await db.owner.query("update app_public.api_keys set expires_at = now() - interval '1 second' where id = $1", [second.id]);
    await createKey(owner, org.id, "four");
    expect(third.id).toBeDefined();
    expect(await liveKeys(org.id)).toBe(3); // two live, one expired
  });

  test("the shipped plans carry a limit", async () => {
    const { rows } = await db.owner.query(
      "select id, max_api_keys, max_api_keys_created_per_hour from app_public.plans where id in ('free', 'pro', 'enterprise') order by max_api_keys",
    );
    expect(rows).toEqual([
      { id: "free", max_api_keys: 10, max_api_keys_created_per_hour: 30 },
      { id: "pro", max_api_keys: 50, max_api_keys_created_per_hour: 200 },
      { id: "enterprise", max_api_keys: 200, max_api_keys_created_per_hour: 1000 },
    ]);
  });

  test("create/revoke cycles stop at the hourly creation quota (revoked keys still count)", async () => {
    const owner = await createUser(db);
    const org = await createOrganization(db, owner, "Key Cycles");
    await db.owner.query(
      `insert into app_public.plans (id, name, max_api_keys, max_api_keys_created_per_hour) values ('keycycle', 'Cycles', 2, 4)
       on conflict (id) do update set max_api_keys = 2, max_api_keys_created_per_hour = 4`,
    );
    await setPlan(db, org.id, "keycycle");
    // (hourly windows are UTC clock hours: start at least 30 s before the hour turns)
    const { rows } = await db.owner.query("select extract(epoch from app_hidden.quota_hour_start(now()) + interval '1 hour' - clock_timestamp()) as left");
    if (Number(rows[0].left) < 30) await new Promise((resolve) => setTimeout(resolve, (Number(rows[0].left) + 1) * 1000));
    for (let i = 0; i < 4; i++) {
      const key = await createKey(owner, org.id, `cycle ${i}`);
      await db.queryAs(owner, "select app_public.revoke_api_key($1)", [key.id]);
    }
    const refused = await db.queryAs(owner, "select app_public.create_api_key($1, 'cycle 4')", [org.id]).catch((e) => e);
    expect(refused.detail).toBe("QUOTA_EXCEEDED");
    expect(JSON.parse(refused.hint)).toMatchObject({ quota: "apiKeysCreatedPerHour", limit: 4 });
    // the next clock hour starts again
    await db.owner.query("update app_private.hourly_quota_usage set window_start = window_start - interval '1 hour' where organization_id = $1", [org.id]);
    await createKey(owner, org.id, "cycle 5");
  });

  test("30 concurrent creations against a limit of 5, on 30 connections: exactly 5 succeed", async () => {
    const owner = await createUser(db);
    const org = await createOrganization(db, owner, "Key Race");
    await db.owner.query("insert into app_public.plans (id, name, max_api_keys) values ('keys5', 'Five keys', 5) on conflict (id) do update set max_api_keys = 5");
    await setPlan(db, org.id, "keys5");
    const result = await tally(Array.from({ length: 30 }, (_, i) => createKey(owner, org.id, `racer ${i}`)));
    expect(result).toEqual({ ok: 5, codes: { API_KEY_LIMIT_REACHED: 25 } });
    expect(await liveKeys(org.id)).toBe(5);
  });
});

describe("a key never does more than its creator may do now", () => {
  const keyView = async (keyId: string, org: string) => {
    const { rows } = await queryAsApiKey(db, keyId, `select current_setting('tenantbase.organization_ids') as member,
      current_setting('tenantbase.admin_organization_ids') as admin,
      (select count(*)::int from app_public.api_keys where organization_id = $1) as keys_seen`, [org]);
    return { member: rows[0].member === `{${org}}`, admin: rows[0].admin === `{${org}}`, keysSeen: rows[0].keys_seen };
  };
  const isRevoked = async (keyId: string) =>
    (await db.owner.query("select revoked_at is not null as r from app_public.api_keys where id = $1", [keyId])).rows[0].r;

  async function team() {
    const owner = await createUser(db, "Owner");
    const admin = await createUser(db, "Admin");
    const org = await createOrganization(db, owner, "Keys Team");
    await addMember(db, org.id, admin, "admin");
    const adminKey = await createKey(admin, org.id, "admin's admin key", "admin");
    const memberKey = await createKey(admin, org.id, "admin's member key", "member");
    const ownersKey = await createKey(owner, org.id, "owner's key", "admin");
    return { owner, admin, org, adminKey, memberKey, ownersKey };
  }

  test("removal: the keys the removed member created are revoked at once, with an audit entry; others' keys stay", async () => {
    const t = await team();
    expect(await keyView(t.adminKey.id, t.org.id)).toEqual({ member: true, admin: true, keysSeen: 3 });
    await db.queryAs(t.owner, "select app_public.remove_member($1, $2)", [t.org.id, t.admin.userId]);
    expect(await isRevoked(t.adminKey.id)).toBe(true);
    expect(await isRevoked(t.memberKey.id)).toBe(true);
    expect(await isRevoked(t.ownersKey.id)).toBe(false);
    expect(await authenticate(t.adminKey.secret)).toEqual([]);
    expect(await keyView(t.adminKey.id, t.org.id)).toEqual({ member: false, admin: false, keysSeen: 0 });
    const { rows } = await db.owner.query(
      "select details ->> 'reason' as reason, created_by from app_public.audit_events where action = 'api_key.revoked' and target_id = any($1) order by target_id",
      [[t.adminKey.id, t.memberKey.id]],
    );
    expect(rows).toEqual([
      { reason: "creator_removed", created_by: t.owner.userId },
      { reason: "creator_removed", created_by: t.owner.userId },
    ]);
    expect(await authenticate(t.ownersKey.secret)).toHaveLength(1);
  });

  test("leaving the organization revokes one's keys too", async () => {
    const t = await team();
    await db.queryAs(t.admin, "select app_public.leave_organization($1)", [t.org.id]);
    expect(await isRevoked(t.adminKey.id)).toBe(true);
  });

  test("demotion: an admin key acts as a member key while its creator is a member, and as admin again after promotion", async () => {
    const t = await team();
    await db.queryAs(t.owner, "select app_public.change_member_role($1, $2, 'member')", [t.org.id, t.admin.userId]);
    expect(await isRevoked(t.adminKey.id)).toBe(false);
    expect(await authenticate(t.adminKey.secret)).toHaveLength(1);
    expect(await keyView(t.adminKey.id, t.org.id)).toEqual({ member: true, admin: false, keysSeen: 0 });
    // admin-only actions are refused to it
    const { rows } = await db.queryAs(t.owner, "insert into app_public.projects (organization_id, name) values ($1, 'Keep') returning id", [t.org.id]);
    await expectCode(queryAsApiKey(db, t.adminKey.id, "select app_public.delete_project($1)", [rows[0].id]), "FORBIDDEN");
    await db.queryAs(t.owner, "select app_public.change_member_role($1, $2, 'admin')", [t.org.id, t.admin.userId]);
    expect(await keyView(t.adminKey.id, t.org.id)).toEqual({ member: true, admin: true, keysSeen: 3 });
    await queryAsApiKey(db, t.adminKey.id, "select app_public.delete_project($1)", [rows[0].id]);
  });

  test("keys created while their creator is being demoted or removed, concurrently: none acts above the creator", async () => {
    for (let round = 0; round < 8; round++) {
      const t = await team();
      const change = round % 2
        ? db.queryAs(t.owner, "select app_public.change_member_role($1, $2, 'member')", [t.org.id, t.admin.userId])
        : db.queryAs(t.owner, "select app_public.remove_member($1, $2)", [t.org.id, t.admin.userId]);
      const created = await Promise.allSettled([
        ...Array.from({ length: 4 }, (_, i) => createKey(t.admin, t.org.id, `racing ${i}`, "admin")),
        change,
      ]);
      expect(created[4].status).toBe("fulfilled");
      const keys = [t.adminKey, ...created.slice(0, 4).flatMap((r) => (r.status === "fulfilled" ? [r.value] : []))];
      for (const key of keys) {
        const view = await keyView(key.id, t.org.id);
        expect(view.admin).toBe(false);
        if (round % 2 === 0) expect(view.member).toBe(false);
      }
    }
  });

  test("a key whose creator is no longer a member sees nothing even if it escaped revocation", async () => {
    const t = await team();
    // what a key created concurrently with its creator's removal would look like
    await db.owner.query("alter table app_public.organization_members disable trigger _210_revoke_api_keys");
    try {
      await db.owner.query("delete from app_public.organization_members where organization_id = $1 and user_id = $2", [t.org.id, t.admin.userId]);
    } finally {
      await db.owner.query("alter table app_public.organization_members enable trigger _210_revoke_api_keys");
    }
    expect(await isRevoked(t.adminKey.id)).toBe(false);
    expect(await authenticate(t.adminKey.secret)).toEqual([]);
    expect(await keyView(t.adminKey.id, t.org.id)).toEqual({ member: false, admin: false, keysSeen: 0 });
  });

  test("account deletion revokes the creator's keys in every organization", async () => {
    const t = await team();
    const other = await createOrganization(db, t.admin, "Admin's Own");
    const ownKey = await createKey(t.admin, other.id, "solo", "admin");
    await db.owner.query(
      `insert into app_private.user_secrets (user_id, password_hash) values ($1, crypt('correct horse', gen_salt('bf', 4)))
       on conflict (user_id) do update set password_hash = excluded.password_hash`,
      [t.admin.userId],
    );
    await db.queryAs(t.admin, "select app_public.delete_account('correct horse')");
    expect(await isRevoked(t.adminKey.id)).toBe(true);
    expect(await isRevoked(ownKey.id)).toBe(true); // its organization was deleted with the account
    // restoring that organization would not bring the key back
    await db.owner.query("update app_public.organizations set deleted_at = null where id = $1", [other.id]);
    expect(await authenticate(ownKey.secret)).toEqual([]);
    expect(await isRevoked(t.ownersKey.id)).toBe(false);
  });
});
