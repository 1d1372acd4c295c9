// Credit controls over real HTTP, with the operations a client uses
// (test/operations/credit-controls/credit-controls.graphql): the balance by category, which grants
// paid for a spend, spend caps set by admins (FORBIDDEN for members, invisible to other tenants),
// and SPEND_CAP_REACHED with the cap in extensions.

import { readFileSync } from "node:fs";
import path from "node:path";
import { buildSchema, Kind, parse, print, validate, type OperationDefinitionNode } from "postgraphile/graphql";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { twoTenants, type TestUser } from "../helpers/fixtures.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { createApiKey } from "../helpers/team.ts";
import { generationHelpers } from "../helpers/generations.ts";
import { projectRoot } from "../../core/paths.ts";

let db: TestDatabase;
let server: TestServer;
let tenants: Awaited<ReturnType<typeof twoTenants>>;
beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer(db);
  tenants = await twoTenants(db);
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

/** Away from midnight UTC, where the caps' days, weeks and months turn (see test/db/110-credits/spend-cap-charges.test.ts). */
beforeEach(async () => {
  const { rows } = await db.owner.query(
    "select extract(epoch from app_hidden.spend_cap_window_end('day', app_hidden.spend_cap_window_start('day', now())) - clock_timestamp()) as left");
  const left = Number(rows[0].left);
  if (left < 30) await new Promise((resolve) => setTimeout(resolve, (left + 1) * 1000));
}, 45000);

const text = readFileSync(path.join(projectRoot, "test", "operations", "credit-controls", "credit-controls.graphql"), "utf8");
const operations = Object.fromEntries(
  parse(text).definitions
    .filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION)
    .map((d) => [d.name!.value, print(d)]),
);
const run = (name: string, variables: Record<string, unknown>, as: TestUser | string) => {
  expect(operations[name]).toBeDefined();
  return server.graphql(operations[name], variables, as);
};
const code = (response: { errors?: { extensions?: { code?: string } }[] }) => response.errors?.[0]?.extensions?.code;

test("the operations are valid against schema.graphql", () => {
  const schema = buildSchema(readFileSync(path.join(projectRoot, "schema.graphql"), "utf8"));
  expect(validate(schema, parse(text)).map((e) => e.message)).toEqual([]);
  expect(Object.keys(operations).sort()).toEqual(
    ["CaptureCredits", "CreditBalance", "RemoveSpendCap", "ReserveCredits", "SetSpendCap", "SpendCaps", "SpendLedger"]);
});

test("balance by category, and the grants that paid for a capture, in the spending order", async () => {
  const { org, member } = tenants.a;
  await db.owner.query("select app_private.grant_credits_as($1, 500, 'promotional', 'launch_promo', now() + interval '30 days', null)", [org.id]);
  await db.owner.query("select app_private.grant_credits($1, 1000, 'purchase', null, null)", [org.id]);
  const balance = await run("CreditBalance", { organizationId: org.id }, member);
  expect(balance.errors).toBeUndefined();
  expect(balance.data.organization.creditAccount).toEqual({
    available: "1600", reserved: "0", availableByCategory: { allowance: 100, promotional: 500, refund: 0, purchased: 1000 },
  });
  expect(balance.data.organization.creditGrants.nodes.map((g: any) => [g.category, g.priority]).sort()).toEqual(
    [["allowance", 10], ["promotional", 20], ["purchased", 40]]);

  const reserved = await run("ReserveCredits", { organizationId: org.id, amount: "300", idempotencyKey: "cc-1" }, member);
  expect(reserved.errors).toBeUndefined();
  const captured = await run("CaptureCredits", { reservationId: reserved.data.reserveCredits.creditReservation.id, amount: "250" }, member);
  expect(captured.data.captureCredits.creditReservation).toMatchObject({ status: "captured", capturedAmount: "250" });
  const ledger = await run("SpendLedger", { organizationId: org.id }, member);
  expect(ledger.errors).toBeUndefined();
  const capture = ledger.data.organization.creditLedgerEntries.nodes.find((e: any) => e.kind === "capture");
  expect(capture.amount).toBe("-250");
  expect(capture.grantAllocations.nodes.map((a: any) => [a.grant.category, a.amount]).sort()).toEqual([["allowance", "100"], ["promotional", "150"]]);
  const after = await run("CreditBalance", { organizationId: org.id }, member);
  expect(after.data.organization.creditAccount.availableByCategory).toEqual({ allowance: 0, promotional: 350, refund: 0, purchased: 1000 });
  // another organization sees none of it
  const other = await run("SpendLedger", { organizationId: org.id }, tenants.b.owner);
  expect(other.data.organization).toBeNull();
});

test("spend caps: admins set and remove, members read (FORBIDDEN to set), other tenants neither; SPEND_CAP_REACHED names the cap", async () => {
  const { org, owner, admin, member } = tenants.a;
  await db.owner.query("select app_private.grant_credits($1, 10000, 'purchase', null, null)", [org.id]);
  const { project } = generationHelpers(() => db);
  const images = await project(owner, org.id, "Images");
  const key = await createApiKey(db, owner, org.id, "worker");

  const refused = await run("SetSpendCap", { organizationId: org.id, period: "day", maxCredits: "100" }, member);
  expect(code(refused)).toBe("FORBIDDEN");
  const foreign = await run("SetSpendCap", { organizationId: org.id, period: "day", maxCredits: "100" }, tenants.b.owner);
  expect(code(foreign)).toBe("NOT_FOUND");
  const invalid = await run("SetSpendCap", { organizationId: org.id, period: "day", maxCredits: "1.5" }, admin);
  expect(code(invalid)).toBe("INVALID_AMOUNT");

  const projectCap = await run("SetSpendCap", { organizationId: org.id, period: "week", maxCredits: "2000", projectId: images }, admin);
  expect(projectCap.errors).toBeUndefined();
  expect(projectCap.data.setSpendCap.creditSpendCap).toMatchObject({ scope: "project", period: "week", maxCredits: "2000", spent: "0", projectId: images });
  const keyCap = await run("SetSpendCap", { organizationId: org.id, period: "day", maxCredits: "50", apiKeyId: key.id, maxPerReservation: "40" }, admin);
  expect(keyCap.errors).toBeUndefined();
  const keyCapId = keyCap.data.setSpendCap.creditSpendCap.id;

  // the key spends within its cap, then past it
  const first = await run("ReserveCredits", { organizationId: org.id, amount: "30", idempotencyKey: "k-1" }, key.secret);
  expect(first.errors).toBeUndefined();
  const tooBig = await run("ReserveCredits", { organizationId: org.id, amount: "41", idempotencyKey: "k-2" }, key.secret);
  expect(tooBig.errors?.[0].extensions).toEqual({
    code: "SPEND_CAP_REACHED", capId: keyCapId, scope: "api_key", apiKeyId: key.id, period: "reservation", limit: 40, requested: 41,
  });
  const over = await run("ReserveCredits", { organizationId: org.id, amount: "21", idempotencyKey: "k-3" }, key.secret);
  expect(over.errors?.[0].message).toMatch(/spend cap allows 50 credits per day/);
  const extensions = over.errors?.[0].extensions as any;
  expect(extensions).toMatchObject({ code: "SPEND_CAP_REACHED", capId: keyCapId, scope: "api_key", period: "day", limit: 50, spent: 30, requested: 21 });
  const { rows } = await db.owner.query(
    `select to_char(app_hidden.spend_cap_window_end('day', app_hidden.spend_cap_window_start('day', now())) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') as e`);
  expect(extensions.resetsAt).toBe(rows[0].e);
  expect(extensions.retryAfter).toBeGreaterThan(0);
  // a member reads the caps and what they used
  const caps = await run("SpendCaps", { organizationId: org.id }, member);
  expect(caps.errors).toBeUndefined();
  // (API keys themselves are for admins to see: a member gets the key's id)
  expect(caps.data.organization.creditSpendCaps.nodes.map((c: any) => [c.scope, c.period, c.maxCredits, c.spent, c.project?.name ?? c.apiKeyId]))
    .toEqual([["project", "week", "2000", "0", "Images"], ["api_key", "day", "50", "30", key.id]]);
  const asAdmin = await run("SpendCaps", { organizationId: org.id }, admin);
  expect(asAdmin.data.organization.creditSpendCaps.nodes[1].apiKey.name).toBe("worker");
  expect(new Date(caps.data.organization.creditSpendCaps.nodes[1].resetsAt).toISOString()).toBe(rows[0].e.replace("Z", ".000Z"));
  const hidden = await run("SpendCaps", { organizationId: org.id }, tenants.b.admin);
  expect(hidden.data.organization).toBeNull();

  // removing: FORBIDDEN for a member, NOT_FOUND for another tenant, fine for an admin
  expect(code(await run("RemoveSpendCap", { id: keyCapId }, member))).toBe("FORBIDDEN");
  expect(code(await run("RemoveSpendCap", { id: keyCapId }, tenants.b.owner))).toBe("NOT_FOUND");
  const removed = await run("RemoveSpendCap", { id: keyCapId }, admin);
  expect(removed.data.removeSpendCap.creditSpendCap.id).toBe(keyCapId);
  const again = await run("ReserveCredits", { organizationId: org.id, amount: "41", idempotencyKey: "k-4" }, key.secret);
  expect(again.errors).toBeUndefined();
});
