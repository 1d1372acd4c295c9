// The invariant check (db/functions/110-credits/checks.sql): credit_ledger_discrepancies names
// every organization whose account differs from its ledger, its grants or its open reservations,
// and nothing else.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createOrganization, createUser } from "../../helpers/fixtures.ts";
import { creditHelpers } from "../../helpers/credits.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const { expectConsistent, reserve } = creditHelpers(() => db);
const discrepancies = async () =>
  (await db.owner.query(
    `select organization_id, available::int, reserved::int, ledger_available::int, ledger_reserved::int,
            grants_remaining::int, open_reserved::int, allocated::int
     from app_private.credit_ledger_discrepancies() order by organization_id`,
  )).rows;

test("each kind of drift is named with its numbers; the healthy organization is not", async () => {
  const owner = await createUser(db);
  const healthy = await createOrganization(db, owner, "Healthy");
  const broken = await createOrganization(db, owner, "Broken");
  await reserve(owner, healthy.id, 10, "h-1");
  await reserve(owner, broken.id, 10, "b-1");
  await expectConsistent();

  // the account moved behind the ledger's back
  await db.owner.query("update app_public.credit_accounts set available = available + 5 where organization_id = $1", [broken.id]);
  expect(await discrepancies()).toEqual([{
    organization_id: broken.id, available: 95, reserved: 10, ledger_available: 90, ledger_reserved: 10,
    grants_remaining: 90, open_reserved: 10, allocated: 10,
  }]);
  await db.owner.query("update app_public.credit_accounts set available = available - 5 where organization_id = $1", [broken.id]);
  await expectConsistent();

  // a grant's remaining changed without an entry
  await db.owner.query("update app_public.credit_grants set remaining = remaining - 1 where organization_id = $1 and remaining > 0", [broken.id]);
  expect((await discrepancies()).map((d) => [d.organization_id, d.grants_remaining])).toEqual([[broken.id, 89]]);
  await db.owner.query("update app_public.credit_grants set remaining = remaining + 1 where organization_id = $1 and source = 'monthly_allowance'", [broken.id]);
  await expectConsistent();

  // a reservation closed without settling it
  await db.owner.query("update app_public.credit_reservations set status = 'released', settled_at = now() where organization_id = $1", [broken.id]);
  expect((await discrepancies()).map((d) => [d.organization_id, d.reserved, d.open_reserved])).toEqual([[broken.id, 10, 0]]);
  await db.owner.query("update app_public.credit_reservations set status = 'open', settled_at = null where organization_id = $1", [broken.id]);

  // an allocation lost
  await db.owner.query("delete from app_private.credit_reservation_allocations where organization_id = $1", [broken.id]);
  expect((await discrepancies()).map((d) => [d.organization_id, d.reserved, d.allocated])).toEqual([[broken.id, 10, 0]]);
});

test("app roles cannot run it", async () => {
  const user = await createUser(db);
  await expect(db.queryAs(user, "select * from app_private.credit_ledger_discrepancies()")).rejects.toMatchObject({ code: "42501" });
});

describe("spend_cap_window_discrepancies", () => {
  const windows = async () =>
    (await db.owner.query("select organization_id, scope, window_spent::int, open_charged::int, captured::int from app_private.spend_cap_window_discrepancies()")).rows;

  test("spent per cap window = open charges + captures in it, through reserve, capture and release; a drifted counter is named", async () => {
    const { capture, release } = creditHelpers(() => db);
    const owner = await createUser(db);
    const org = await createOrganization(db, owner, "Capped");
    await db.queryAs(owner, "select app_public.set_spend_cap($1, 'month', 1000)", [org.id]);
    await db.queryAs(owner, "select app_public.set_spend_cap($1, 'day', 1000)", [org.id]);
    const r1 = await reserve(owner, org.id, 30, "cap-1");
    const r2 = await reserve(owner, org.id, 20, "cap-2");
    await reserve(owner, org.id, 5, "cap-3");
    await capture(owner, r1.id, 25); // 5 given back
    await release(owner, r2.id);
    expect(await windows()).toEqual([]);
    const { rows } = await db.owner.query("select app_public.credit_spend_caps_spent(c)::int as spent from app_public.credit_spend_caps c where organization_id = $1", [org.id]);
    expect(rows).toEqual([{ spent: 30 }, { spent: 30 }]); // 25 captured + 5 open

    await db.owner.query("update app_public.credit_spend_caps set window_spent = window_spent + 7 where organization_id = $1 and period = 'day'", [org.id]);
    expect(await windows()).toEqual([{ organization_id: org.id, scope: "organization", window_spent: 37, open_charged: 5, captured: 25 }]);
    await db.owner.query("update app_public.credit_spend_caps set window_spent = window_spent - 7 where organization_id = $1 and period = 'day'", [org.id]);
    expect(await windows()).toEqual([]);
  });

  test("a project's cap counts its generations' captures, not the organization's other spending", async () => {
    const { generationHelpers } = await import("../../helpers/generations.ts");
    const { project, start, complete } = generationHelpers(() => db);
    const owner = await createUser(db);
    const org = await createOrganization(db, owner, "Project capped");
    const p = await project(owner, org.id);
    await db.queryAs(owner, "select app_public.set_spend_cap($1, 'month', 1000, $2)", [org.id, p]);
    const g = await start(owner, org.id, p, 10, "gen-cap-1");
    await complete(owner, g.id, 7);
    await reserve(owner, org.id, 5, "outside-project"); // the organization's, not the project's
    expect(await windows()).toEqual([]);
    await db.owner.query("update app_public.credit_spend_caps set window_spent = 6 where organization_id = $1", [org.id]);
    expect(await windows()).toEqual([{ organization_id: org.id, scope: "project", window_spent: 6, open_charged: 0, captured: 7 }]);
    await db.owner.query("update app_public.credit_spend_caps set window_spent = 7 where organization_id = $1", [org.id]);
  });

  test("an API key's cap counts the captures of what that key reserved, not other keys' or members'", async () => {
    const { createApiKey, queryAsApiKey } = await import("../../helpers/team.ts");
    const { capture } = creditHelpers(() => db);
    const owner = await createUser(db);
    const org = await createOrganization(db, owner, "Key capped");
    const key = await createApiKey(db, owner, org.id, "capped-script");
    const other = await createApiKey(db, owner, org.id, "other-script");
    await db.queryAs(owner, "select app_public.set_spend_cap($1, 'month', 1000, null, $2)", [org.id, key.id]);
    const asKey = (id: string, amount: number, k: string) =>
      queryAsApiKey(db, id, "select * from app_public.reserve_credits($1, $2, $3, 900)", [org.id, amount, k]).then((r) => r.rows[0]);
    const r1 = await asKey(key.id, 10, "key-1");
    await asKey(key.id, 4, "key-2"); // open
    const r3 = await asKey(other.id, 9, "other-1");
    await reserve(owner, org.id, 6, "member-1");
    await capture(owner, r1.id, 8);
    await capture(owner, r3.id, 9);
    expect((await db.owner.query("select api_key_id from app_public.credit_reservations where organization_id = $1 and id = $2", [org.id, r1.id])).rows)
      .toEqual([{ api_key_id: key.id }]);
    expect(await windows()).toEqual([]);
    await db.owner.query("update app_public.credit_spend_caps set window_spent = 20 where organization_id = $1", [org.id]);
    expect(await windows()).toEqual([{ organization_id: org.id, scope: "api_key", window_spent: 20, open_charged: 4, captured: 8 }]);
    await db.owner.query("update app_public.credit_spend_caps set window_spent = 12 where organization_id = $1", [org.id]);
    expect(await windows()).toEqual([]);
  });

  test("app roles cannot run it", async () => {
    const user = await createUser(db);
    await expect(db.queryAs(user, "select * from app_private.spend_cap_window_discrepancies()")).rejects.toMatchObject({ code: "42501" });
  });
});
