// Secrets: whsec_ + base64 of 32 random bytes, shown once; rotation keeps the previous secret
// signing for 24 hours and no more than one previous; no app role reads them.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { twoTenants } from "../../helpers/fixtures.ts";
import { codeOf } from "../../helpers/codes.ts";

let db: TestDatabase;
let t: Awaited<ReturnType<typeof twoTenants>>;
beforeAll(async () => {
  db = await createTestDatabase();
  t = await twoTenants(db);
});
afterAll(() => db?.drop());

test("rotation: the new secret and the previous one sign for 24 hours; rotating again drops the older", async () => {
  const made = await db.queryAs(t.a.admin, "select (r.webhook_endpoint).id, r.secret from app_public.create_webhook_endpoint($1, 'https://hooks.example.com/s') r", [t.a.org.id]);
  const { id, secret: first } = made.rows[0];
  expect(Buffer.from(first.slice(6), "base64")).toHaveLength(32);
  const signing = async () => (await db.owner.query("select app_private.webhook_signing_secrets($1, $2) as s", [t.a.org.id, id])).rows[0].s;
  expect(await signing()).toEqual([first]);
  const second = (await db.queryAs(t.a.admin, "select secret from app_public.rotate_webhook_secret($1)", [id])).rows[0].secret;
  expect(await signing()).toEqual([second, first]);
  const expiry = await db.owner.query("select expires_at - updated_at = interval '24 hours' as ok from app_private.webhook_endpoint_secrets where secret = $1", [first]);
  expect(expiry.rows[0].ok).toBe(true);
  const third = (await db.queryAs(t.a.admin, "select secret from app_public.rotate_webhook_secret($1)", [id])).rows[0].secret;
  expect(await signing()).toEqual([third, second]);
  await db.owner.query("update app_private.webhook_endpoint_secrets set expires_at = now() - interval '1 second' where secret = $1", [second]);
  expect(await signing()).toEqual([third]);
  // the secret is not readable afterwards through anything an app role can reach
  expect(await codeOf(db.queryAs(t.a.owner, "select app_private.webhook_signing_secrets($1, $2)", [t.a.org.id, id]))).toMatch(/^42501/);
  const visible = await db.queryAs(t.a.owner, "select row_to_json(x)::text as row from (select id, url, description, event_types, header_names from app_public.webhook_endpoints e) x");
  expect(visible.rows[0].row).not.toContain("whsec_");
  expect(await codeOf(db.queryAs(t.b.owner, "select app_public.rotate_webhook_secret($1)", [id]))).toBe("NOT_FOUND");
  expect(await codeOf(db.queryAs(t.a.member, "select app_public.rotate_webhook_secret($1)", [id]))).toBe("FORBIDDEN");
});
