// The event catalog: the types the issue names, each with a version, a description and a JSON
// Schema of an object; readable by anyone (webhookEventTypes); docs/outbound-webhooks.md lists
// exactly these types; emit refuses a type not in it.

import { readFileSync } from "node:fs";
import path from "node:path";
import { projectRoot } from "../../../core/paths.ts";
import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

test("the catalog has the required types, each with a version, a description and an object schema", async () => {
  const { rows } = await db.queryAs(null, "select * from app_public.webhook_event_types()");
  const names = rows.map((r) => r.name);
  for (const name of [
    "generation.completed", "generation.failed", "credits.low_balance", "credits.cap_used", "credits.granted", "credits.expiring",
    "subscription.updated", "invoice.paid", "member.joined", "member.left", "member.role_changed", "api_key.created",
    "api_key.revoked", "webhook.test",
  ]) {
    expect(names).toContain(name);
  }
  for (const row of rows) {
    expect(row.version).toBeGreaterThanOrEqual(1);
    expect(row.description.length).toBeGreaterThan(10);
    expect(row.payload_schema).toMatchObject({ type: "object", properties: expect.any(Object), required: expect.any(Array) });
    for (const required of row.payload_schema.required) expect(Object.keys(row.payload_schema.properties)).toContain(required);
  }
  expect((await db.owner.query("select app_private.is_webhook_event_type('nope') as ok")).rows[0].ok).toBe(false);
});

test("docs/outbound-webhooks.md lists every type of the catalog, and no other", async () => {
  const { rows } = await db.owner.query("select name, version from app_public.webhook_event_types()");
  const doc = readFileSync(path.join(projectRoot, "docs", "outbound-webhooks.md"), "utf8");
  const section = doc.split("## Event catalog")[1].split("\n## ")[0];
  const documented = [...section.matchAll(/^\| `([a-z_.]+)` \| (\d+) \|/gm)].map((m) => `${m[1]} v${m[2]}`).sort();
  expect(documented).toEqual(rows.map((r) => `${r.name} v${r.version}`).sort());
});

test("emit refuses a type that is not in the catalog", async () => {
  await expect(db.owner.query("select app_private.emit_webhook_event(gen_random_uuid(), 'made.up', '{}')")).rejects.toThrow(/not in the event catalog/);
});
