// Organization API keys in SQL: creation rules, hashed secrets, authenticate_api_key (revoked,
// expired, deleted organization, API access switched off, call counting), and what
// current_user_organization_ids() answers for a key of each role.

import { createHash } from "node:crypto";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { twoTenants } from "../helpers/fixtures.ts";
import { expectCode, queryAsApiKey } from "../helpers/team.ts";

let db: TestDatabase;
let cast: Awaited<ReturnType<typeof twoTenants>>;
beforeAll(async () => {
  db = await createTestDatabase();
  cast = await twoTenants(db);
});
afterAll(() => db?.drop());

async function createKey(as: any, org: string, name = "backend", role = "member", expiresAt: string | null = null) {
  const { rows } = await db.queryAs(
    as,
    `select (r.api_key).id, (r.api_key).role::text, (r.api_key).secret_prefix, (r.api_key).expires_at, r.secret
     from app_public.create_api_key($1, $2, $3, $4) r`,
    [org, name, role, expiresAt],
  );
  return rows[0];
}
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

test("a key acts for its organization alone, with its role; revoking it ends even a request in flight", async () => {
  const member = await createKey(cast.a.admin, cast.a.org.id, "m", "member");
  const admin = await createKey(cast.a.admin, cast.a.org.id, "a", "admin");
  const ids = (keyId: string) =>
    queryAsApiKey(
      db,
      keyId,
      `select app_public.current_user_organization_ids() as m, app_public.current_user_organization_ids('admin') as a,
              app_public.current_user_organization_ids('owner') as o, app_public.current_user_id() as u`,
    ).then((r) => r.rows[0]);
  expect(await ids(member.id)).toEqual({ m: [cast.a.org.id], a: [], o: [], u: null });
  expect(await ids(admin.id)).toEqual({ m: [cast.a.org.id], a: [cast.a.org.id], o: [], u: null });

  // RLS follows: members' tables yes, admin-only tables only for the admin key, B never
  const count = async (keyId: string, table: string) =>
    (await queryAsApiKey(db, keyId, `select organization_id from app_public.${table}`)).rows.map((r) => r.organization_id);
  expect(await count(member.id, "organization_members")).toEqual([cast.a.org.id, cast.a.org.id, cast.a.org.id]);
  expect(await count(member.id, "api_keys")).toEqual([]);
  expect(await count(member.id, "audit_events")).toEqual([]);
  expect((await count(admin.id, "api_keys")).every((o) => o === cast.a.org.id)).toBe(true);
  expect((await count(admin.id, "audit_events")).length).toBeGreaterThan(0);
  expect((await count(admin.id, "audit_events")).every((o) => o === cast.a.org.id)).toBe(true);

  // team administration needs a person: keys cannot invite, create keys or change roles
  await expectCode(queryAsApiKey(db, admin.id, "select app_public.invite_member($1, 'x@example.com')", [cast.a.org.id]), "NOT_AUTHENTICATED");
  await expectCode(queryAsApiKey(db, admin.id, "select app_public.create_api_key($1, 'more')", [cast.a.org.id]), "NOT_AUTHENTICATED");
  await expectCode(
    queryAsApiKey(db, admin.id, "select app_public.change_member_role($1, $2, 'admin')", [cast.a.org.id, cast.a.member.userId]),
    "NOT_AUTHENTICATED",
  );

  await db.queryAs(cast.a.owner, "select app_public.revoke_api_key($1)", [admin.id]);
  expect(await ids(admin.id)).toEqual({ m: [], a: [], o: [], u: null });
});

test("users are unaffected by the API-key branch, and a user claim wins over a stray key claim", async () => {
  const key = await createKey(cast.a.admin, cast.a.org.id);
  const { rows } = await db.as(cast.b.member, async (client) => {
    await client.query("select set_config('jwt.claims.api_key_id', $1, true)", [key.id]);
    return client.query("select app_public.current_user_organization_ids() as ids");
  });
  expect(rows[0].ids).toEqual([cast.b.org.id]);
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
