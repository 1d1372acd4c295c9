// Outbound webhooks over GraphQL: admins create (the secret once, in the payload), rotate, test
// and delete endpoints; members read endpoints and the delivery log but not header values and
// cannot manage; another organization sees nothing; the catalog is public; SSRF and header
// injection are refused with their codes.

import { readFileSync } from "node:fs";
import path from "node:path";
import pg from "pg";
import { buildSchema, Kind, parse, print, validate, type OperationDefinitionNode } from "graphql";
import { Logger, runOnce } from "graphile-worker";
import { projectRoot } from "../../core/paths.ts";
import { taskList } from "../../workers/tasks/index.ts";
import { startReceiver } from "../helpers/webhook-receiver.ts";
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

const text = readFileSync(path.join(projectRoot, "test", "operations", "outbound-webhooks", "outbound-webhooks.graphql"), "utf8");
const operations = Object.fromEntries(
  parse(text).definitions
    .filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION)
    .map((d) => [d.name!.value, print(d)]),
);
const run = (name: string, variables: Record<string, unknown>, as: any) => {
  expect(operations[name]).toBeDefined();
  return server.graphql(operations[name], variables, as);
};

test("the documented operations are valid against schema.graphql", () => {
  const schema = buildSchema(readFileSync(path.join(projectRoot, "schema.graphql"), "utf8"));
  expect(validate(schema, parse(text)).map((e) => e.message)).toEqual([]);
});

test("the documented operations, end to end: create, a real delivery, the log, rotate, test, disable/enable with recovery, replay", async () => {
  const saved = process.env.WEBHOOK_ALLOW_PRIVATE_ADDRESSES;
  process.env.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = "true";
  await db.owner.query("update app_private.webhook_settings set allow_http = true, allow_private_addresses = true");
  const receiver = await startReceiver();
  const pool = new pg.Pool({ connectionString: db.ownerUrl, max: 3 });
  pool.on("error", () => {});
  pool.on("connect", (client) => client.on("error", () => {}));
  const logger = new Logger(() => () => {});
  const work = async () => {
    for (let i = 0; i < 100; i++) {
      await runOnce({ pgPool: pool, taskList, concurrency: 2, noHandleSignals: true, noPreparedStatements: true, logger });
      const { rows } = await db.owner.query("select count(*)::int as n from graphile_worker.jobs where run_at <= now()");
      if (rows[0].n === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  try {
    const created = await run("CreateWebhookEndpoint", { organizationId: t.b.org.id, url: receiver.url("/ops"), description: "Ops", eventTypes: ["member.role_changed"], headers: { "X-Env": "test" } }, t.b.admin);
    expect(created.errors).toBeUndefined();
    const { secret, webhookEndpoint } = created.data.createWebhookEndpoint;
    receiver.verifyWith(secret);
    await db.queryAs(t.b.owner, "select app_public.change_member_role($1, $2, 'admin')", [t.b.org.id, t.b.member.userId]);
    await work();
    expect(receiver.received.map((r) => r.verifiedBy)).toEqual([[secret]]);

    const log = await run("WebhookDeliveryLog", { endpointId: webhookEndpoint.id }, t.b.member);
    const [delivery] = log.data.webhookDeliveries.nodes;
    expect(delivery).toMatchObject({ status: "succeeded", attemptCount: 1, message: { eventType: "member.role_changed" } });
    expect(delivery.attempts.nodes).toEqual([expect.objectContaining({ statusCode: 200, responseBody: "ok", error: null })]);
    expect((await run("WebhookEndpoints", {}, t.b.member)).data.webhookEndpoints.nodes[0]).toMatchObject({ id: webhookEndpoint.id, headerNames: ["X-Env"] });
    expect((await run("WebhookEventTypes", {}, null)).data.webhookEventTypes.nodes.length).toBeGreaterThanOrEqual(14);

    const rotated = (await run("RotateWebhookSecret", { id: webhookEndpoint.id }, t.b.admin)).data.rotateWebhookSecret.secret;
    receiver.verifyWith(secret, rotated);
    expect((await run("SendTestWebhook", { id: webhookEndpoint.id }, t.b.admin)).data.sendTestWebhook.webhookDelivery.status).toBe("pending");
    await work();
    expect(receiver.received[1].verifiedBy).toEqual([secret, rotated]);

    // disabled while a change happens; enabling with recover sends it
    await server.graphql(`mutation ($id: UUID!) { disableWebhookEndpoint(input: { id: $id }) { webhookEndpoint { id } } }`, { id: webhookEndpoint.id }, t.b.admin);
    await db.queryAs(t.b.owner, "select app_public.change_member_role($1, $2, 'member')", [t.b.org.id, t.b.member.userId]);
    await work();
    expect(receiver.received).toHaveLength(2);
    expect((await run("EnableWebhookEndpoint", { id: webhookEndpoint.id, recover: true }, t.b.admin)).data.enableWebhookEndpoint.webhookEndpoint.disabledAt).toBeNull();
    await work();
    expect(JSON.parse(receiver.received[2].body).data).toMatchObject({ new_role: "member" });

    const replayed = await run("ReplayWebhookMessage", { id: delivery.message.id }, t.b.admin);
    expect(replayed.data.replayWebhookMessage.queued).toBe(1);
    await work();
    expect(receiver.received[3].id).toBe(delivery.message.id);
    const recovered = await run("RecoverWebhookEndpoint", { id: webhookEndpoint.id, since: new Date(Date.now() - 3600_000).toISOString() }, t.b.admin);
    expect(recovered.data.recoverWebhookEndpoint.queued).toBe(0);
  } finally {
    if (saved === undefined) delete process.env.WEBHOOK_ALLOW_PRIVATE_ADDRESSES;
    else process.env.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = saved;
    await receiver.close();
    await pool.end();
  }
});
