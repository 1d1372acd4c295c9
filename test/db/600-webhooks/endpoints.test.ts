// Webhook endpoints: admins create, change, disable, enable and delete; members read; another
// organization sees and changes nothing; URLs naming internal hosts are refused at creation;
// custom headers are bounded and cannot inject; the plan bounds how many.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { twoTenants } from "../../helpers/fixtures.ts";
import { codeOf, UNKNOWN } from "../../helpers/codes.ts";

let db: TestDatabase;
let t: Awaited<ReturnType<typeof twoTenants>>;
beforeAll(async () => {
  db = await createTestDatabase();
  t = await twoTenants(db);
});
afterAll(() => db?.drop());

const create = (actor: any, org: string, url: string, extra: { types?: string[]; headers?: unknown } = {}) =>
  db.queryAs(actor, "select (r.webhook_endpoint).id, (r.webhook_endpoint).url, r.secret from app_public.create_webhook_endpoint($1, $2, 'd', $3, $4) r", [
    org,
    url,
    extra.types ?? [],
    JSON.stringify(extra.headers ?? {}),
  ]);

test("an admin creates an endpoint and sees its secret once; members read it; the other organization sees nothing", async () => {
  const made = await create(t.a.admin, t.a.org.id, "https://hooks.example.com/in", { types: ["member.joined"] });
  expect(made.rows[0].secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
  const id = made.rows[0].id;
  const seen = await db.queryAs(t.a.member, "select id, url, description, event_types from app_public.webhook_endpoints");
  expect(seen.rows.map((r) => r.id)).toEqual([id]);
  expect(Object.keys(seen.rows[0])).not.toContain("secret");
  expect((await db.queryAs(t.b.owner, "select id from app_public.webhook_endpoints")).rows).toEqual([]);
  // no app role reads the secrets
  expect(await codeOf(db.queryAs(t.a.owner, "select * from app_private.webhook_endpoint_secrets"))).toMatch(/^42501/);
  // the other organization cannot change, disable, delete, rotate, test it
  for (const fn of ["disable_webhook_endpoint", "enable_webhook_endpoint", "delete_webhook_endpoint", "rotate_webhook_secret", "send_test_webhook"]) {
    expect(await codeOf(db.queryAs(t.b.owner, `select app_public.${fn}($1)`, [id]))).toBe("NOT_FOUND");
  }
  expect(await codeOf(db.queryAs(t.b.owner, "select app_public.update_webhook_endpoint($1, 'https://evil.example.com')", [id]))).toBe("NOT_FOUND");
  expect(await codeOf(db.queryAs(t.b.owner, "select app_public.create_webhook_endpoint($1, 'https://evil.example.com')", [t.a.org.id]))).toBe("NOT_FOUND");
  expect(await codeOf(db.queryAs(t.a.owner, "select app_public.disable_webhook_endpoint($1)", [UNKNOWN]))).toBe("NOT_FOUND");
});

test("a member may not create, change or delete endpoints (FORBIDDEN)", async () => {
  expect(await codeOf(create(t.a.member, t.a.org.id, "https://hooks.example.com/member"))).toBe("FORBIDDEN");
  const { rows } = await create(t.a.owner, t.a.org.id, "https://hooks.example.com/owner");
  expect(await codeOf(db.queryAs(t.a.member, "select app_public.update_webhook_endpoint($1, description => 'x')", [rows[0].id]))).toBe("FORBIDDEN");
  expect(await codeOf(db.queryAs(t.a.member, "select app_public.delete_webhook_endpoint($1)", [rows[0].id]))).toBe("FORBIDDEN");
  expect(await codeOf(db.queryAs(t.a.member, "select app_public.rotate_webhook_secret($1)", [rows[0].id]))).toBe("FORBIDDEN");
  await db.queryAs(t.a.owner, "select app_public.delete_webhook_endpoint($1)", [rows[0].id]);
});

test("update changes what is given; disable and enable; delete removes it", async () => {
  const { rows } = await create(t.a.admin, t.a.org.id, "https://hooks.example.com/u");
  const id = rows[0].id;
  expect(await codeOf(db.queryAs(t.a.admin, "select app_public.update_webhook_endpoint($1)", [id]))).toBe("EMPTY_PATCH");
  const updated = await db.queryAs(t.a.admin, "select * from app_public.update_webhook_endpoint($1, description => ' new ', event_types => '{api_key.created,member.left,api_key.created}')", [id]);
  expect(updated.rows[0]).toMatchObject({ url: "https://hooks.example.com/u", description: "new", event_types: ["api_key.created", "member.left"] });
  expect(await codeOf(db.queryAs(t.a.admin, "select app_public.update_webhook_endpoint($1, event_types => '{nope.nothing}')", [id]))).toBe("WEBHOOK_EVENT_TYPE_UNKNOWN");
  const disabled = await db.queryAs(t.a.admin, "select * from app_public.disable_webhook_endpoint($1)", [id]);
  expect(disabled.rows[0]).toMatchObject({ disabled_reason: "admin" });
  expect(await codeOf(db.queryAs(t.a.admin, "select app_public.send_test_webhook($1)", [id]))).toBe("WEBHOOK_ENDPOINT_DISABLED");
  const enabled = await db.queryAs(t.a.admin, "select * from app_public.enable_webhook_endpoint($1)", [id]);
  expect(enabled.rows[0]).toMatchObject({ disabled_at: null, disabled_reason: null, failing_since: null });
  await db.queryAs(t.a.admin, "select app_public.delete_webhook_endpoint($1)", [id]);
  expect((await db.owner.query("select count(*)::int as n from app_private.webhook_endpoint_secrets where endpoint_id = $1", [id])).rows[0].n).toBe(0);
});

test("URLs naming internal hosts, other schemes, credentials or numeric host forms are refused at creation", async () => {
  const refused: Record<string, string> = {
    "http://hooks.example.com/": "WEBHOOK_URL_INVALID",
    "ftp://hooks.example.com/": "WEBHOOK_URL_INVALID",
    "https://user:pass@hooks.example.com/": "WEBHOOK_URL_INVALID",
    "https://": "WEBHOOK_URL_INVALID",
    "https://exa mple.com/": "WEBHOOK_URL_INVALID",
    "https://hooks.example.com/\r\nX: y": "WEBHOOK_URL_INVALID",
    "https://127.0.0.1/": "WEBHOOK_URL_FORBIDDEN",
    "https://10.1.2.3/": "WEBHOOK_URL_FORBIDDEN",
    "https://172.16.0.1/": "WEBHOOK_URL_FORBIDDEN",
    "https://192.168.1.1/": "WEBHOOK_URL_FORBIDDEN",
    "https://169.254.169.254/latest/meta-data": "WEBHOOK_URL_FORBIDDEN",
    "https://100.64.0.1/": "WEBHOOK_URL_FORBIDDEN",
    "https://224.0.0.1/": "WEBHOOK_URL_FORBIDDEN",
    "https://0.0.0.0/": "WEBHOOK_URL_FORBIDDEN",
    "https://2130706433/": "WEBHOOK_URL_FORBIDDEN",
    "https://0x7f000001/": "WEBHOOK_URL_FORBIDDEN",
    "https://0177.0.0.1/": "WEBHOOK_URL_FORBIDDEN",
    "https://127.1/": "WEBHOOK_URL_FORBIDDEN",
    "https://[::1]/": "WEBHOOK_URL_FORBIDDEN",
    "https://[::ffff:127.0.0.1]/": "WEBHOOK_URL_FORBIDDEN",
    "https://[::ffff:a9fe:a9fe]/": "WEBHOOK_URL_FORBIDDEN",
    "https://[fd00::1]/": "WEBHOOK_URL_FORBIDDEN",
    "https://[fe80::1]/": "WEBHOOK_URL_FORBIDDEN",
    "https://localhost:8443/": "WEBHOOK_URL_FORBIDDEN",
    "https://api.localhost/": "WEBHOOK_URL_FORBIDDEN",
    "https://metadata.google.internal/": "WEBHOOK_URL_FORBIDDEN",
  };
  for (const [url, code] of Object.entries(refused)) {
    expect([url, await codeOf(create(t.a.admin, t.a.org.id, url))]).toEqual([url, code]);
  }
  expect((await db.queryAs(t.a.admin, "select count(*)::int as n from app_public.webhook_endpoints where url like '%127%'")).rows[0].n).toBe(0);
  // public addresses and names pass
  for (const url of ["https://93.184.216.34/hook", "https://[2606:2800:220:1::1]/hook", "https://hooks.example.com:8443/a?b=c"]) {
    const { rows } = await create(t.a.admin, t.a.org.id, url);
    await db.queryAs(t.a.admin, "select app_public.delete_webhook_endpoint($1)", [rows[0].id]);
  }
});

test("the development setting allows http and private addresses", async () => {
  await db.owner.query("update app_private.webhook_settings set allow_http = true, allow_private_addresses = true");
  try {
    const { rows } = await create(t.a.admin, t.a.org.id, "http://127.0.0.1:9/x");
    await db.queryAs(t.a.admin, "select app_public.delete_webhook_endpoint($1)", [rows[0].id]);
  } finally {
    await db.owner.query("update app_private.webhook_settings set allow_http = false, allow_private_addresses = false");
  }
});

test("custom headers: at most 10, token names, no reserved names, no line breaks, bounded values", async () => {
  const bad: unknown[] = [
    [1, 2],
    Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`X-H${i}`, "v"])),
    { "X-Bad Name": "v" },
    { "X-Inject": "v\r\nX-Other: w" },
    { "X-Inject": "v\nw" },
    { "X-Long": "v".repeat(1001) },
    { ["X-" + "n".repeat(100)]: "v" },
    { "webhook-signature": "v1,forged" },
    { Host: "internal" },
    { "Content-Length": "0" },
    { "Transfer-Encoding": "chunked" },
    { "X-Number": 5 },
  ];
  for (const headers of bad) {
    expect([headers, await codeOf(create(t.a.admin, t.a.org.id, "https://hooks.example.com/h", { headers }))]).toEqual([headers, "WEBHOOK_HEADERS_INVALID"]);
  }
  const { rows } = await create(t.a.admin, t.a.org.id, "https://hooks.example.com/h", { headers: { Authorization: "Bearer abc", "X-Tenant": "a\tb" } });
  // values are write-only: members (and admins) see the names, not the values
  expect(await codeOf(db.queryAs(t.a.admin, "select headers from app_public.webhook_endpoints where id = $1", [rows[0].id]))).toMatch(/^42501/);
  const names = await db.queryAs(t.a.member, "select header_names as names from app_public.webhook_endpoints e where id = $1", [rows[0].id]);
  expect(names.rows).toEqual([{ names: ["Authorization", "X-Tenant"] }]);
  await db.queryAs(t.a.admin, "select app_public.delete_webhook_endpoint($1)", [rows[0].id]);
});

test("the plan bounds the endpoints of an organization (WEBHOOK_ENDPOINT_LIMIT_REACHED)", async () => {
  await db.owner.query("update app_public.plans set max_webhook_endpoints = 2 where id = 'free'");
  const org = t.b.org.id;
  await create(t.b.admin, org, "https://hooks.example.com/1");
  await create(t.b.admin, org, "https://hooks.example.com/2");
  expect(await codeOf(create(t.b.admin, org, "https://hooks.example.com/3"))).toBe("WEBHOOK_ENDPOINT_LIMIT_REACHED");
});

test("creating and deleting endpoints in a loop stops at 30 creations an hour (QUOTA_EXCEEDED)", async () => {
  await db.owner.query("update app_public.plans set max_webhook_endpoints = null where id = 'free'");
  const org = t.b.org.id;
  let code: string | null = null;
  let made = 0;
  for (let i = 0; i < 40 && code === null; i++) {
    try {
      const { rows } = await create(t.b.admin, org, `https://hooks.example.com/cycle-${i}`);
      made++;
      await db.queryAs(t.b.admin, "select app_public.delete_webhook_endpoint($1)", [rows[0].id]);
    } catch (error: any) {
      code = error.detail;
    }
  }
  expect(code).toBe("QUOTA_EXCEEDED");
  expect(made).toBeLessThanOrEqual(30);
});
