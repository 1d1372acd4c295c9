// Usage alerts over real HTTP and a real websocket, with the operations a client uses
// (test/operations/credit-alerts/credit-alerts.graphql): admins set thresholds (FORBIDDEN for
// members, invisible to other tenants), bad values get their codes, a spend that crosses one is
// listed and published on organizationEvents, and each admin turns the emails off.

import { readFileSync } from "node:fs";
import path from "node:path";
import { buildSchema, Kind, parse, print, validate, type OperationDefinitionNode } from "postgraphile/graphql";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { twoTenants, type TestUser } from "../helpers/fixtures.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { subscribe, trackedSockets } from "../helpers/realtime.ts";
import { projectRoot } from "../../core/paths.ts";

let db: TestDatabase;
let server: TestServer;
let tenants: Awaited<ReturnType<typeof twoTenants>>;
const sockets = trackedSockets(() => server.url);
beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db);
  tenants = await twoTenants(db);
});
afterEach(() => sockets.closeAll());
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

/** Away from midnight UTC, where the caps' days and the alert days turn. */
beforeEach(async () => {
  const { rows } = await db.owner.query(
    "select extract(epoch from app_hidden.spend_cap_window_end('day', app_hidden.spend_cap_window_start('day', now())) - clock_timestamp()) as left");
  const left = Number(rows[0].left);
  if (left < 30) await new Promise((resolve) => setTimeout(resolve, (left + 1) * 1000));
}, 45000);

const text = readFileSync(path.join(projectRoot, "test", "operations", "credit-alerts", "credit-alerts.graphql"), "utf8");
const operations = Object.fromEntries(
  parse(text).definitions
    .filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION)
    .map((d) => [d.name!.value, print(d)]),
);
const run = (name: string, variables: Record<string, unknown>, as: TestUser) => {
  expect(operations[name]).toBeDefined();
  return server.graphql(operations[name], variables, as);
};
const code = (response: { errors?: { extensions?: { code?: string } }[] }) => response.errors?.[0]?.extensions?.code;
const RESERVE = `mutation ($o: UUID!, $a: BigFloat!, $k: String!) { reserveCredits(input: { organizationId: $o, amount: $a, idempotencyKey: $k }) { creditReservation { id } } }`;

test("the operations are valid against schema.graphql", () => {
  const schema = buildSchema(readFileSync(path.join(projectRoot, "schema.graphql"), "utf8"));
  expect(validate(schema, parse(text)).map((e) => e.message)).toEqual([]);
  expect(Object.keys(operations).sort()).toEqual(
    ["CreditAlertEvents", "CreditAlertThresholds", "RecentCreditAlerts", "RemoveCreditAlertThreshold", "SetCreditAlertEmails", "SetCreditAlertThreshold"]);
});

test("admins set thresholds; members read them and get FORBIDDEN; other tenants NOT_FOUND; bad values get their codes", async () => {
  const { a, b } = tenants;
  const cap = await server.graphql(`mutation ($o: UUID!) { setSpendCap(input: { organizationId: $o, period: day, maxCredits: "1000" }) { creditSpendCap { id } } }`, { o: a.org.id }, a.owner);
  expect(cap.errors).toBeUndefined();
  const capId = cap.data.setSpendCap.creditSpendCap.id;
  const low = await run("SetCreditAlertThreshold", { organizationId: a.org.id, kind: "low_balance", balanceAtMost: "100" }, a.admin);
  expect(low.errors).toBeUndefined();
  expect(low.data.setCreditAlertThreshold.creditAlertThreshold).toMatchObject({ kind: "low_balance", balanceAtMost: "100", capId: null, percent: null, lastFiredAt: null });
  const used = await run("SetCreditAlertThreshold", { organizationId: a.org.id, kind: "cap_used", capId, percent: 80 }, a.owner);
  expect(used.data.setCreditAlertThreshold.creditAlertThreshold).toMatchObject({ kind: "cap_used", capId, percent: 80 });

  const listed = await run("CreditAlertThresholds", { organizationId: a.org.id }, a.member);
  expect(listed.data.organization.creditAlertThresholds.nodes).toEqual([
    expect.objectContaining({ kind: "low_balance", balanceAtMost: "100", cap: null }),
    expect.objectContaining({ kind: "cap_used", percent: 80, cap: { id: capId, scope: "organization", period: "day", maxCredits: "1000" } }),
  ]);
  expect(code(await run("SetCreditAlertThreshold", { organizationId: a.org.id, kind: "low_balance", balanceAtMost: "5" }, a.member))).toBe("FORBIDDEN");
  expect(code(await run("RemoveCreditAlertThreshold", { id: low.data.setCreditAlertThreshold.creditAlertThreshold.id }, a.member))).toBe("FORBIDDEN");
  expect(code(await run("SetCreditAlertThreshold", { organizationId: a.org.id, kind: "low_balance", balanceAtMost: "5" }, b.owner))).toBe("NOT_FOUND");
  expect(code(await run("RemoveCreditAlertThreshold", { id: low.data.setCreditAlertThreshold.creditAlertThreshold.id }, b.owner))).toBe("NOT_FOUND");
  expect((await run("CreditAlertThresholds", { organizationId: a.org.id }, b.owner)).data.organization).toBeNull();
  expect(code(await run("SetCreditAlertThreshold", { organizationId: a.org.id, kind: "cap_used", capId, percent: 150 }, a.owner))).toBe("INVALID_PERCENT");
  expect(code(await run("SetCreditAlertThreshold", { organizationId: a.org.id, kind: "low_balance", balanceAtMost: "-1" }, a.owner))).toBe("INVALID_AMOUNT");
  expect(code(await run("SetCreditAlertThreshold", { organizationId: a.org.id, kind: "low_balance" }, a.owner))).toBe("INVALID_ARGUMENTS");

  const removed = await run("RemoveCreditAlertThreshold", { id: used.data.setCreditAlertThreshold.creditAlertThreshold.id }, a.admin);
  expect(removed.data.removeCreditAlertThreshold.creditAlertThreshold.id).toBe(used.data.setCreditAlertThreshold.creditAlertThreshold.id);
});

test("a spend that crosses a threshold: listed in recent alerts and published on organizationEvents; each admin opts out of the emails", async () => {
  const { a, b } = tenants;
  await db.owner.query("update app_public.organizations set plan_id = 'enterprise' where id = $1", [a.org.id]);
  await db.owner.query("select app_private.grant_credits($1, 1000, 'purchase', null, null)", [a.org.id]);
  const { rows } = await db.owner.query("select available::int from app_public.credit_accounts where organization_id = $1", [a.org.id]);
  const threshold = rows[0].available - 300;
  const set = await run("SetCreditAlertThreshold", { organizationId: a.org.id, kind: "low_balance", balanceAtMost: String(threshold) }, a.owner);
  expect(set.errors).toBeUndefined();

  const events = subscribe(sockets.connect(a.member), operations.CreditAlertEvents, { organizationId: a.org.id });
  await events.waitFor((m) => m.data?.organizationEvents?.kind === "SUBSCRIBED");
  const other = subscribe(sockets.connect(b.owner), operations.CreditAlertEvents, { organizationId: b.org.id });
  await other.waitFor((m) => m.data?.organizationEvents?.kind === "SUBSCRIBED");

  expect((await server.graphql(RESERVE, { o: a.org.id, a: "400", k: "cross" }, a.member)).errors).toBeUndefined();
  const event = await events.waitFor((m) => m.data?.organizationEvents?.kind === "CREDIT_ALERT");
  expect(event.data!.organizationEvents.creditAlert).toMatchObject({
    kind: "low_balance", available: String(threshold - 100), balanceAtMost: String(threshold),
  });
  const recent = await run("RecentCreditAlerts", { organizationId: a.org.id }, a.member);
  expect(recent.data.organization.creditAlerts.nodes).toEqual([
    expect.objectContaining({ id: event.data!.organizationEvents.creditAlertId, kind: "low_balance", available: String(threshold - 100) }),
  ]);
  expect((await run("RecentCreditAlerts", { organizationId: a.org.id }, b.owner)).data.organization).toBeNull();
  expect(other.messages.filter((m) => m.data?.organizationEvents?.kind === "CREDIT_ALERT")).toEqual([]);

  const off = await run("SetCreditAlertEmails", { enabled: false }, a.admin);
  expect(off.data.setCreditAlertEmails.userSettings).toEqual({ creditAlertEmails: false });
  const { rows: recipients } = await db.owner.query("select user_id from app_private.credit_alert_recipients($1)", [a.org.id]);
  expect(recipients.map((r) => r.user_id)).toEqual([a.owner.userId]);
});
