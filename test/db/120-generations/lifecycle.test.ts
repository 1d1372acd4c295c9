// Generations (db/functions/120-generations/lifecycle.sql): start reserves, complete captures,
// fail releases; idempotency; bad input; other tenants.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createOrganization, createUser, twoTenants } from "../../helpers/fixtures.ts";
import { codeOf, UNKNOWN } from "../../helpers/codes.ts";
import { creditHelpers } from "../../helpers/credits.ts";
import { generationHelpers } from "../../helpers/generations.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const { account, expectConsistent } = creditHelpers(() => db);
const { project, start, complete, fail } = generationHelpers(() => db);

test("start reserves, complete captures what it cost and releases the rest, fail costs nothing", async () => {
  const owner = await createUser(db);
  const org = await createOrganization(db, owner, "Gen Org");
  const p = await project(owner, org.id);
  const g1 = await start(owner, org.id, p, 10, "g1", { prompt: "a cat", size: "1024x1024" });
  expect(g1).toMatchObject({ status: "running", kind: "image", model: "flux-1", project_id: p });
  expect(await account(org.id)).toEqual({ available: 90, reserved: 10 });
  const done = await complete(owner, g1.id, 7, { url: "https://cdn.example/x.png" });
  expect(done).toMatchObject({ status: "succeeded", metadata: { prompt: "a cat", size: "1024x1024", url: "https://cdn.example/x.png" } });
  expect(Number(done.credits_charged)).toBe(7);
  expect(done.completed_at).toBeInstanceOf(Date);
  expect(await account(org.id)).toEqual({ available: 93, reserved: 0 });

  const g2 = await start(owner, org.id, p, 20, "g2");
  const failed = await fail(owner, g2.id);
  expect(failed).toMatchObject({ status: "failed", error: "provider timeout" });
  expect(Number(failed.credits_charged)).toBe(0);
  expect(await account(org.id)).toEqual({ available: 93, reserved: 0 });

  const g3 = await start(owner, org.id, p, 5, "g3");
  expect(Number((await complete(owner, g3.id, 0)).credits_charged)).toBe(0); // free after all
  expect(await account(org.id)).toEqual({ available: 93, reserved: 0 });

  const ledger = await db.owner.query("select kind, amount::int from app_public.credit_ledger where generation_id = $1 order by seq", [g1.id]);
  expect(ledger.rows).toEqual([{ kind: "reserve", amount: 0 }, { kind: "capture", amount: -7 }, { kind: "release", amount: 0 }]);
  const counters = await db.owner.query("select generations::int, credits_spent::int from app_public.usage_counters where organization_id = $1", [org.id]);
  expect(counters.rows[0]).toEqual({ generations: 3, credits_spent: 7 });
  expect((await db.owner.query("select * from app_private.usage_counter_discrepancies()")).rows).toEqual([]);
  await expectConsistent();
});

test("repeats: the same key starts once; completing or failing twice is harmless; finished stays finished", async () => {
  const owner = await createUser(db);
  const org = await createOrganization(db, owner);
  const p = await project(owner, org.id);
  const g = await start(owner, org.id, p, 10, "same");
  expect((await start(owner, org.id, p, 10, "same")).id).toBe(g.id);
  expect(await codeOf(start(owner, org.id, p, 11, "same"))).toBe("IDEMPOTENCY_KEY_REUSED");
  expect(await account(org.id)).toEqual({ available: 90, reserved: 10 });
  await complete(owner, g.id, 4);
  expect(Number((await complete(owner, g.id, 4)).credits_charged)).toBe(4);
  expect(await codeOf(complete(owner, g.id, 5))).toBe("GENERATION_ALREADY_FINISHED");
  expect(await codeOf(fail(owner, g.id))).toBe("GENERATION_ALREADY_FINISHED");
  const h = await start(owner, org.id, p, 10, "other");
  await fail(owner, h.id);
  expect((await fail(owner, h.id)).status).toBe("failed");
  expect(await codeOf(complete(owner, h.id, 1))).toBe("GENERATION_ALREADY_FINISHED");
  expect(await account(org.id)).toEqual({ available: 96, reserved: 0 });
  await expectConsistent();
});

test("bad input and other tenants: clear codes, nothing changes", async () => {
  const { a, b } = await twoTenants(db);
  const pa = await project(a.member, a.org.id);
  const pb = await project(b.member, b.org.id);
  const before = await account(a.org.id);
  expect(await codeOf(start(a.member, a.org.id, pb, 5, "k1"))).toBe("NOT_FOUND"); // B's project
  expect(await codeOf(start(a.member, a.org.id, UNKNOWN, 5, "k2"))).toBe("NOT_FOUND");
  expect(await codeOf(start(b.member, a.org.id, pa, 5, "k3"))).toBe("NOT_FOUND"); // B in A's org
  for (const credits of [0, -3, 2.5, "1e13"]) expect(await codeOf(start(a.member, a.org.id, pa, credits, "k4"))).toBe("INVALID_AMOUNT");
  expect(await codeOf(start(a.member, a.org.id, pa, 5, "k5", [1, 2]))).toBe("INVALID_METADATA");
  expect(await codeOf(start(a.member, a.org.id, pa, 5, "k5", "just text"))).toBe("INVALID_METADATA");
  expect(await codeOf(start(a.member, a.org.id, pa, 5, "k5", { big: "x".repeat(70000) }))).toBe("INVALID_METADATA");
  expect(await codeOf(start(a.member, a.org.id, pa, 5, "k5", { big: "x".repeat(16400) }))).toBe("INVALID_METADATA");
  expect(await codeOf(start(a.member, a.org.id, pa, 5, "k6", {}, "image", " "))).toBe("INVALID_MODEL");
  expect(await codeOf(start(a.member, a.org.id, pa, 5, "k6", {}, "hologram"))).toMatch(/^22P02/); // not a kind (GraphQL's enum refuses it first)
  expect(await codeOf(start(a.member, a.org.id, pa, 5, ""))).toBe("INVALID_IDEMPOTENCY_KEY");
  expect(await codeOf(start(a.member, a.org.id, pa, 1000, "k7"))).toBe("INSUFFICIENT_CREDITS");
  await db.queryAs(a.admin, "select app_public.delete_project($1)", [pa]);
  expect(await codeOf(start(a.member, a.org.id, pa, 5, "k8"))).toBe("NOT_FOUND"); // deleted project
  await db.queryAs(a.admin, "select app_public.restore_project($1)", [pa]);
  expect(await account(a.org.id)).toEqual(before);

  const g = await start(a.member, a.org.id, pa, 5, "ok");
  expect((await db.queryAs(b.owner, "select * from app_public.generations where id = $1", [g.id])).rows).toEqual([]);
  expect(await codeOf(complete(b.owner, g.id, 1))).toBe("NOT_FOUND");
  expect(await codeOf(fail(b.owner, g.id))).toBe("NOT_FOUND");
  expect(await codeOf(complete(a.member, g.id, 6))).toBe("INVALID_AMOUNT"); // more than reserved
  expect(await codeOf(complete(a.member, g.id, -1))).toBe("INVALID_AMOUNT");
  expect(await codeOf(complete(a.member, g.id, 1, [1]))).toBe("INVALID_METADATA");
  // 16 kB of JSON text, the stored metadata and the result's merged (issue 25, A7)
  expect(await codeOf(complete(a.member, g.id, 1, { more: "y".repeat(16500) }))).toBe("INVALID_METADATA");
  expect(await codeOf(fail(a.member, g.id, "e".repeat(2001)))).toBe("INVALID_ERROR");
  expect(await codeOf(complete(a.member, UNKNOWN, 1))).toBe("NOT_FOUND");
  await expect(db.queryAs(a.owner, "update app_public.generations set credits_charged = 0")).rejects.toThrow(/permission denied/);
  await expect(db.queryAs(a.owner, "insert into app_public.generations (organization_id, project_id, kind, model, credits_estimated, reservation_id, idempotency_key) values ($1, $2, 'image', 'x', 1, $3, 'z')", [a.org.id, pa, g.reservation_id])).rejects.toThrow(/permission denied/);
  expect((await db.queryAs(a.member, "select status from app_public.generations where id = $1", [g.id])).rows[0].status).toBe("running");
  await expectConsistent();
});
