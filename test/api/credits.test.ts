// The credit mutations and the account / ledger over real HTTP.

import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { twoTenants } from "../helpers/fixtures.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

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

const RESERVE = `mutation ($organizationId: UUID!, $amount: BigFloat!, $key: String!, $ttl: Int) {
  reserveCredits(input: { organizationId: $organizationId, amount: $amount, idempotencyKey: $key, ttlSeconds: $ttl }) {
    creditReservation { id amount status expiresAt }
  }
}`;
const CAPTURE = `mutation ($id: UUID!, $amount: BigFloat) {
  captureCredits(input: { reservationId: $id, amount: $amount }) { creditReservation { id amount capturedAmount status } }
}`;
const RELEASE = `mutation ($id: UUID!) { releaseCredits(input: { reservationId: $id }) { creditReservation { id status } } }`;
const ACCOUNT = `query ($id: UUID!) {
  organization(id: $id) {
    creditAccount { available reserved }
    creditLedgerEntries(first: 2, orderBy: SEQ_DESC) {
      totalCount
      pageInfo { hasNextPage endCursor }
      nodes { kind amount availableDelta reservedDelta balanceAfter source }
    }
  }
}`;

const code = (response: { errors?: { extensions?: { code?: string } }[] }) => response.errors?.[0]?.extensions?.code;

test("reserve, capture part, read the account and page through the ledger", async () => {
  const { org, member } = tenants.a;
  const reserved = await server.graphql(RESERVE, { organizationId: org.id, amount: "30", key: "api-1", ttl: 120 }, member);
  expect(reserved.errors).toBeUndefined();
  const r = reserved.data.reserveCredits.creditReservation;
  expect(r).toMatchObject({ amount: "30", status: "open" });
  expect(new Date(r.expiresAt).getTime()).toBeGreaterThan(Date.now());

  const again = await server.graphql(RESERVE, { organizationId: org.id, amount: 30, key: "api-1" }, member);
  expect(again.data.reserveCredits.creditReservation.id).toBe(r.id);

  const captured = await server.graphql(CAPTURE, { id: r.id, amount: 12 }, member);
  expect(captured.errors).toBeUndefined();
  expect(captured.data.captureCredits.creditReservation).toMatchObject({ capturedAmount: "12", status: "captured" });

  const account = await server.graphql(ACCOUNT, { id: org.id }, member);
  expect(account.errors).toBeUndefined();
  expect(account.data.organization.creditAccount).toEqual({ available: "88", reserved: "0" });
  const ledger = account.data.organization.creditLedgerEntries;
  expect(ledger.totalCount).toBe(4); // allowance grant, reserve, capture, release of the rest
  expect(ledger.nodes).toEqual([
    { kind: "release", amount: "0", availableDelta: "18", reservedDelta: "-18", balanceAfter: "88", source: null },
    { kind: "capture", amount: "-12", availableDelta: "0", reservedDelta: "-12", balanceAfter: "88", source: null },
  ]);
  expect(ledger.pageInfo.hasNextPage).toBe(true);
  const next = await server.graphql(
    `query ($id: UUID!, $after: Cursor) { organization(id: $id) { creditLedgerEntries(first: 5, after: $after, orderBy: SEQ_DESC) { nodes { kind } pageInfo { hasNextPage } } } }`,
    { id: org.id, after: ledger.pageInfo.endCursor }, member);
  expect(next.data.organization.creditLedgerEntries.nodes.map((n: any) => n.kind)).toEqual(["reserve", "grant"]);
  expect(next.data.organization.creditLedgerEntries.pageInfo.hasNextPage).toBe(false);

  const settledTwice = await server.graphql(CAPTURE, { id: r.id }, member);
  expect(code(settledTwice)).toBe("RESERVATION_ALREADY_SETTLED");
});

test("release gives everything back; errors carry their codes", async () => {
  const { org, member } = tenants.a;
  const r = (await server.graphql(RESERVE, { organizationId: org.id, amount: 5, key: "api-2" }, member)).data.reserveCredits.creditReservation;
  const released = await server.graphql(RELEASE, { id: r.id }, member);
  expect(released.data.releaseCredits.creditReservation.status).toBe("released");
  expect(code(await server.graphql(RELEASE, { id: r.id }, member))).toBe("RESERVATION_ALREADY_SETTLED");
  expect(code(await server.graphql(RESERVE, { organizationId: org.id, amount: 1_000_000, key: "api-3" }, member))).toBe("INSUFFICIENT_CREDITS");
});

test("bad input: non-integers, zero, negatives, huge and malformed numbers, unknown ids", async () => {
  const { org, member } = tenants.a;
  for (const amount of [0, -1, 1.5, "2.25", "1000000000001", "1e40", 1e300]) {
    const response = await server.graphql(RESERVE, { organizationId: org.id, amount, key: `bad-${amount}` }, member);
    expect({ amount, code: code(response) }).toEqual({ amount, code: "INVALID_AMOUNT" });
  }
  const malformed = await server.graphql(RESERVE, { organizationId: org.id, amount: "abc", key: "bad-abc" }, member);
  expect(code(malformed)).toBe("INVALID_INPUT");
  for (const amount of ["abc", true, { a: 1 }]) {
    const response = await server.graphql(RESERVE, { organizationId: org.id, amount, key: "bad-type" }, member);
    expect(response.errors?.length).toBeGreaterThan(0);
    expect(response.data?.reserveCredits ?? null).toBeNull();
    expect(JSON.stringify(response.errors)).not.toMatch(/syntax|numeric|select|postgres/i);
  }
  const badUuid = await server.graphql(CAPTURE, { id: "not-a-uuid" }, member);
  expect(badUuid.errors?.length).toBeGreaterThan(0);
  expect(code(await server.graphql(CAPTURE, { id: "00000000-0000-7000-8000-000000000000" }, member))).toBe("NOT_FOUND");
  expect(code(await server.graphql(RESERVE, { organizationId: org.id, amount: 1, key: "ttl", ttl: 0 }, member))).toBe("INVALID_TTL");
  expect(code(await server.graphql(RESERVE, { organizationId: org.id, amount: 1, key: "" }, member))).toBe("INVALID_IDEMPOTENCY_KEY");
  const account = await server.graphql(ACCOUNT, { id: org.id }, member);
  expect(account.data.organization.creditAccount).toEqual({ available: "88", reserved: "0" });
});

test("cross-tenant: a member of B can neither see A's credits nor move them; anonymous cannot call", async () => {
  const { a, b } = tenants;
  const r = (await server.graphql(RESERVE, { organizationId: a.org.id, amount: 1, key: "cross" }, a.member)).data.reserveCredits.creditReservation;
  expect(code(await server.graphql(RESERVE, { organizationId: a.org.id, amount: 1, key: "x" }, b.owner))).toBe("NOT_FOUND");
  expect(code(await server.graphql(CAPTURE, { id: r.id }, b.owner))).toBe("NOT_FOUND");
  expect(code(await server.graphql(RELEASE, { id: r.id }, b.owner))).toBe("NOT_FOUND");
  const seen = await server.graphql(ACCOUNT, { id: a.org.id }, b.owner);
  expect(seen.data.organization).toBeNull();
  const lists = await server.graphql(`{ creditAccounts { nodes { organizationId } } creditLedgerEntries { nodes { organizationId } } creditReservations { nodes { organizationId } } creditGrants { nodes { organizationId } } }`, {}, b.owner);
  expect(lists.errors).toBeUndefined();
  for (const list of Object.values(lists.data) as any[]) {
    expect(list.nodes.every((n: any) => n.organizationId === b.org.id)).toBe(true);
  }
  const anonymous = await server.graphql(RESERVE, { organizationId: a.org.id, amount: 1, key: "anon" });
  expect(anonymous.errors?.length).toBeGreaterThan(0);
  expect((await server.graphql(RELEASE, { id: r.id }, a.member)).data.releaseCredits.creditReservation.status).toBe("released");
});
