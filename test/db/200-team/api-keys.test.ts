// Organization API keys in SQL (db/functions/200-team/api-keys.sql): creation rules, hashed
// secrets, authenticate_api_key (revoked, expired, deleted organization, API access switched off,
// call counting). What a key may see is in 010-foundation/caller.test.ts.

import { createHash } from "node:crypto";
import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { twoTenants } from "../../helpers/fixtures.ts";
import { createApiKey, expectCode } from "../../helpers/team.ts";

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
