// Outbound webhooks over GraphQL: admins create (the secret once, in the payload), rotate, test
// and delete endpoints; members read endpoints and the delivery log but not header values and
// cannot manage; another organization sees nothing; the catalog is public; SSRF and header
// injection are refused with their codes.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { twoTenants } from "../helpers/fixtures.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let db: TestDatabase;
let server: TestServer;
let t: Awaited<ReturnType<typeof twoTenants>>;
beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db);
  t = await twoTenants(db);
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

const CREATE = `mutation ($o: UUID!, $url: String!, $types: [String], $headers: JSON) {
  createWebhookEndpoint(input: { organizationId: $o, url: $url, description: "CRM", eventTypes: $types, headers: $headers }) {
    secret webhookEndpoint { id url eventTypes headerNames disabledAt }
  }
}`;
const code = (r: { errors?: { extensions?: { code?: string } }[] }) => r.errors?.[0]?.extensions?.code;

test("an admin manages an endpoint; members read it; the other organization sees nothing", async () => {
  const made = await server.graphql(CREATE, { o: t.a.org.id, url: "https://crm.example.com/hooks", types: ["member.joined"], headers: { Authorization: "Bearer s3cret" } }, t.a.admin);
  expect(made.errors).toBeUndefined();
  const { secret, webhookEndpoint } = made.data.createWebhookEndpoint;
  expect(secret).toMatch(/^whsec_/);
  expect(webhookEndpoint).toMatchObject({ url: "https://crm.example.com/hooks", eventTypes: ["member.joined"], headerNames: ["Authorization"], disabledAt: null });

  const list = await server.graphql(`{ webhookEndpoints { nodes { id url headerNames } } }`, {}, t.a.member);
  expect(list.data.webhookEndpoints.nodes).toEqual([{ id: webhookEndpoint.id, url: "https://crm.example.com/hooks", headerNames: ["Authorization"] }]);
  expect(JSON.stringify(list)).not.toContain("s3cret");
  expect(code(await server.graphql(`{ webhookEndpoints { nodes { headers } } }`, {}, t.a.admin))).toBe("GRAPHQL_VALIDATION_FAILED");
  expect((await server.graphql(`{ webhookEndpoints { nodes { id } } }`, {}, t.b.owner)).data.webhookEndpoints.nodes).toEqual([]);

  const rotated = await server.graphql(`mutation ($id: UUID!) { rotateWebhookSecret(input: { id: $id }) { secret } }`, { id: webhookEndpoint.id }, t.a.admin);
  expect(rotated.data.rotateWebhookSecret.secret).toMatch(/^whsec_/);
  expect(rotated.data.rotateWebhookSecret.secret).not.toBe(secret);

  const tested = await server.graphql(`mutation ($id: UUID!) { sendTestWebhook(input: { id: $id }) { webhookDelivery { status endpointId } } }`, { id: webhookEndpoint.id }, t.a.admin);
  expect(tested.data.sendTestWebhook.webhookDelivery).toEqual({ status: "pending", endpointId: webhookEndpoint.id });
  const log = await server.graphql(`{ webhookMessages { nodes { eventType payload } } webhookDeliveries { nodes { status } } }`, {}, t.a.member);
  expect(log.data.webhookMessages.nodes).toEqual([{ eventType: "webhook.test", payload: { endpoint_id: webhookEndpoint.id } }]);

  for (const [mutation, who] of [["rotateWebhookSecret", t.a.member], ["deleteWebhookEndpoint", t.a.member], ["sendTestWebhook", t.b.owner]] as const) {
    const refused = await server.graphql(`mutation ($id: UUID!) { ${mutation}(input: { id: $id }) { clientMutationId } }`, { id: webhookEndpoint.id }, who);
    expect([mutation, code(refused)]).toEqual([mutation, who === t.b.owner ? "NOT_FOUND" : "FORBIDDEN"]);
  }
  const deleted = await server.graphql(`mutation ($id: UUID!) { deleteWebhookEndpoint(input: { id: $id }) { webhookEndpoint { id } } }`, { id: webhookEndpoint.id }, t.a.owner);
  expect(deleted.data.deleteWebhookEndpoint.webhookEndpoint.id).toBe(webhookEndpoint.id);
});

test("a member cannot create one; internal URLs and injected headers are refused with their codes", async () => {
  expect(code(await server.graphql(CREATE, { o: t.a.org.id, url: "https://crm.example.com/m" }, t.a.member))).toBe("FORBIDDEN");
  expect(code(await server.graphql(CREATE, { o: t.a.org.id, url: "https://169.254.169.254/latest/meta-data/" }, t.a.admin))).toBe("WEBHOOK_URL_FORBIDDEN");
  expect(code(await server.graphql(CREATE, { o: t.a.org.id, url: "https://[::ffff:10.0.0.1]/" }, t.a.admin))).toBe("WEBHOOK_URL_FORBIDDEN");
  expect(code(await server.graphql(CREATE, { o: t.a.org.id, url: "http://crm.example.com/" }, t.a.admin))).toBe("WEBHOOK_URL_INVALID");
  expect(code(await server.graphql(CREATE, { o: t.a.org.id, url: "https://crm.example.com/", headers: { "X-A": "1\r\nX-B: 2" } }, t.a.admin))).toBe("WEBHOOK_HEADERS_INVALID");
  expect(code(await server.graphql(CREATE, { o: t.a.org.id, url: "https://crm.example.com/", headers: { "X-A": "v".repeat(5000) } }, t.a.admin))).toBe("WEBHOOK_HEADERS_INVALID");
  expect(code(await server.graphql(CREATE, { o: t.a.org.id, url: "https://crm.example.com/", types: ["no.such"] }, t.a.admin))).toBe("WEBHOOK_EVENT_TYPE_UNKNOWN");
});

test("the event catalog is public", async () => {
  const { data } = await server.graphql(`{ webhookEventTypes { nodes { name version description payloadSchema } } }`, {}, null);
  expect(data.webhookEventTypes.nodes.map((n: { name: string }) => n.name)).toContain("generation.completed");
  expect(data.webhookEventTypes.nodes[0].payloadSchema).toMatchObject({ type: "object" });
});
