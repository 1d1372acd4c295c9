// Spend caps, enforced (db/functions/110-credits/spend-cap-charges.sql): every reservation counts
// against the caps of its organization, its project (generations) and the API key it was made
// with; past one it is refused with SPEND_CAP_REACHED naming the cap; a release gives back, a
// capture keeps what was spent; a new period starts from 0.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { codeOf } from "../../helpers/codes.ts";
import { creditHelpers } from "../../helpers/credits.ts";
import { generationHelpers } from "../../helpers/generations.ts";
import { createApiKey, queryAsApiKey } from "../../helpers/team.ts";
import type { TestUser } from "../../helpers/fixtures.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

/**
 * Caps count per UTC day, week and month: a test that crossed midnight would see its window start
 * again (CI runs these tests at 23:56 on the last day of a month and of a year). Tests start at
 * least 30 s before the day turns, waiting for the turn when closer, whatever the clock says.
 */
async function awayFromTheDayTurn() {
  const { rows } = await db.owner.query(
    "select extract(epoch from app_hidden.spend_cap_window_end('day', app_hidden.spend_cap_window_start('day', now())) - clock_timestamp()) as left");
  const left = Number(rows[0].left);
  if (left < 30) await new Promise((resolve) => setTimeout(resolve, (left + 1) * 1000));
}
beforeEach(() => awayFromTheDayTurn(), 45000);

const { account, expectConsistent, emptyOrganization, reserve, capture, release } = creditHelpers(() => db);
const { project, start, complete } = generationHelpers(() => db);

async function orgWithCredits(credits = 1000) {
  const { org, owner } = await emptyOrganization();
  await db.owner.query("select app_private.grant_credits($1, $2, 'purchase', null, null)", [org.id, credits]);
  return { org, owner };
}

const setCap = (as: TestUser, org: string, period: string, max: number, projectId: string | null = null, apiKeyId: string | null = null, perReservation: number | null = null) =>
  db.queryAs(as, "select * from app_public.set_spend_cap($1, $2, $3, $4, $5, $6)", [org, period, max, projectId, apiKeyId, perReservation]).then((r) => r.rows[0]);

const spent = async (capId: string) =>
  Number((await db.owner.query("select app_public.credit_spend_caps_spent(c) as s from app_public.credit_spend_caps c where id = $1", [capId])).rows[0].s);

/** The refusal's code and its extensions (what the server puts next to extensions.code). */
async function refusal(promise: Promise<unknown>) {
  try {
    await promise;
  } catch (error: any) {
    return { code: error.detail, extensions: error.hint ? JSON.parse(error.hint) : {} };
  }
  throw new Error("expected a refusal");
}

const endOf = async (period: string) =>
  (await db.owner.query(
    `select to_char(app_hidden.spend_cap_window_end($1, app_hidden.spend_cap_window_start($1, now())) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') as e`,
    [period])).rows[0].e;

test("an organization cap: refused past it with the cap in extensions; a release gives back, a capture keeps what it spent", async () => {
  const { org, owner } = await orgWithCredits();
  const cap = await setCap(owner, org.id, "day", 10);
  const r1 = await reserve(owner, org.id, 6, "r1");
  expect(await spent(cap.id)).toBe(6);
  const before = await account(org.id);
  const refused = await refusal(reserve(owner, org.id, 5, "r2"));
  expect(refused).toEqual({
    code: "SPEND_CAP_REACHED",
    extensions: {
      capId: cap.id, scope: "organization", period: "day", limit: 10, spent: 6, requested: 5,
      resetsAt: await endOf("day"), retryAfter: expect.any(Number),
    },
  });
  // nothing of the refused reservation remains
  expect(await account(org.id)).toEqual(before);
  expect((await db.owner.query("select count(*)::int as n from app_public.credit_reservations where organization_id = $1", [org.id])).rows[0].n).toBe(1);
  // up to the cap exactly is fine
  const r3 = await reserve(owner, org.id, 4, "r3");
  expect(await spent(cap.id)).toBe(10);
  await release(owner, r1.id);
  expect(await spent(cap.id)).toBe(4);
  await capture(owner, r3.id, 1); // 1 spent, 3 released
  expect(await spent(cap.id)).toBe(1);
  const r4 = await reserve(owner, org.id, 9, "r4");
  expect(await codeOf(reserve(owner, org.id, 1, "r5"))).toBe("SPEND_CAP_REACHED");
  // an expired reservation gives back like a release
  await db.owner.query("update app_public.credit_reservations set expires_at = now() - interval '1 second' where id = $1", [r4.id]);
  await db.owner.query("select app_private.expire_reservation($1, $2)", [org.id, r4.id]);
  expect(await spent(cap.id)).toBe(1);
  // a replayed reservation (same key) is not counted twice
  await reserve(owner, org.id, 3, "r6");
  await reserve(owner, org.id, 3, "r6");
  expect(await spent(cap.id)).toBe(4);
  await expectConsistent();
});

test("a per-reservation limit refuses one reservation too large, with period 'reservation'", async () => {
  const { org, owner } = await orgWithCredits();
  const cap = await setCap(owner, org.id, "month", 100, null, null, 5);
  expect(await refusal(reserve(owner, org.id, 6, "big"))).toEqual({
    code: "SPEND_CAP_REACHED",
    extensions: { capId: cap.id, scope: "organization", period: "reservation", limit: 5, requested: 6 },
  });
  await reserve(owner, org.id, 5, "ok");
  expect(await spent(cap.id)).toBe(5);
});

test("a project cap counts that project's generations only; the organization's cap counts everything", async () => {
  const { org, owner } = await orgWithCredits();
  const images = await project(owner, org.id, "Images");
  const video = await project(owner, org.id, "Video");
  const projectCap = await setCap(owner, org.id, "week", 10, images);
  const orgCap = await setCap(owner, org.id, "month", 30);
  const g1 = await start(owner, org.id, images, 8, "g1");
  const refused = await refusal(start(owner, org.id, images, 3, "g2"));
  expect(refused.code).toBe("SPEND_CAP_REACHED");
  expect(refused.extensions).toMatchObject({ capId: projectCap.id, scope: "project", projectId: images, period: "week", limit: 10, spent: 8, requested: 3, resetsAt: await endOf("week") });
  // no generation was left behind by the refusal
  expect((await db.owner.query("select count(*)::int as n from app_public.generations where organization_id = $1", [org.id])).rows[0].n).toBe(1);
  await start(owner, org.id, video, 3, "g3");
  await reserve(owner, org.id, 5, "plain"); // no project: only the organization's cap
  expect(await spent(projectCap.id)).toBe(8);
  expect(await spent(orgCap.id)).toBe(16);
  await complete(owner, g1.id, 2); // 6 of 8 released
  expect(await spent(projectCap.id)).toBe(2);
  expect(await spent(orgCap.id)).toBe(10);
  await start(owner, org.id, images, 8, "g4");
  const orgRefusal = await refusal(reserve(owner, org.id, 13, "over-org"));
  expect(orgRefusal.extensions).toMatchObject({ capId: orgCap.id, scope: "organization", period: "month", limit: 30, spent: 18, requested: 13 });
  await expectConsistent();
});

test("an API key cap counts what that key reserves, not what other keys or members reserve", async () => {
  const { org, owner } = await orgWithCredits();
  const key = await createApiKey(db, owner, org.id, "runaway-script");
  const other = await createApiKey(db, owner, org.id, "other");
  const cap = await setCap(owner, org.id, "day", 10, null, key.id);
  const asKey = (id: string, amount: number, k: string) =>
    queryAsApiKey(db, id, "select * from app_public.reserve_credits($1, $2, $3, 900)", [org.id, amount, k]).then((r) => r.rows[0]);
  await asKey(key.id, 10, "k1");
  const refused = await refusal(asKey(key.id, 1, "k2"));
  expect(refused.extensions).toMatchObject({ capId: cap.id, scope: "api_key", apiKeyId: key.id, period: "day", limit: 10, spent: 10, requested: 1 });
  await asKey(other.id, 10, "o1");
  await reserve(owner, org.id, 10, "u1");
  expect(await spent(cap.id)).toBe(10);
  // once revoked, its cap is gone (and the key cannot reserve anyway)
  await db.queryAs(owner, "select app_public.revoke_api_key($1)", [key.id]);
  expect((await db.owner.query("select count(*)::int as n from app_private.credit_reservation_cap_charges where organization_id = $1", [org.id])).rows[0].n).toBe(0);
  await expectConsistent();
});

test("a new period starts from 0; a release of a reservation from the past period does not lower the new one", async () => {
  const { org, owner } = await orgWithCredits();
  const cap = await setCap(owner, org.id, "day", 10);
  const old = await reserve(owner, org.id, 10, "yesterday");
  // what the clock turning the day does: the cap's counter now belongs to the day before
  await db.owner.query("update app_public.credit_spend_caps set window_start = window_start - interval '1 day' where id = $1", [cap.id]);
  await db.owner.query("update app_private.credit_reservation_cap_charges set window_start = window_start - interval '1 day' where cap_id = $1", [cap.id]);
  expect(await spent(cap.id)).toBe(0);
  await reserve(owner, org.id, 7, "today");
  expect(await spent(cap.id)).toBe(7);
  await release(owner, old.id);
  expect(await spent(cap.id)).toBe(7);
  expect(await codeOf(reserve(owner, org.id, 4, "today-2"))).toBe("SPEND_CAP_REACHED");
  await expectConsistent();
});

test("a lower cap set while credits are reserved refuses the next reservation; operators' grants and debits are not capped", async () => {
  const { org, owner } = await orgWithCredits();
  const cap = await setCap(owner, org.id, "day", 100);
  await reserve(owner, org.id, 50, "a");
  await setCap(owner, org.id, "day", 40);
  expect(await spent(cap.id)).toBe(50);
  expect(await codeOf(reserve(owner, org.id, 1, "b"))).toBe("SPEND_CAP_REACHED");
  await db.owner.query("select app_private.debit_credits($1, 100, 'correction', null)", [org.id]);
  await db.owner.query("select app_private.grant_credits($1, 100, 'manual', null, null)", [org.id]);
  expect(await spent(cap.id)).toBe(50);
});
