// The spend trigger (db/functions/310-auto-top-up/top-up-trigger.sql): a fall of available credits
// to or below the threshold starts one attempt and one job; a grant or a fall that stays above
// does nothing; 50 concurrent spends crossing the threshold make exactly one attempt.

import pg from "pg";
import { actorSettings, createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { withSettings } from "../../../db/transaction.ts";
import { autoTopUpHelpers, setUpAutoTopUp } from "../../helpers/auto-top-up.ts";
import { creditHelpers } from "../../helpers/credits.ts";
import { setPlan } from "../../helpers/team.ts";

let db: TestDatabase;
let pack: string;
beforeAll(async () => {
  db = await createTestDatabase();
  pack = await setUpAutoTopUp(db);
});
afterAll(() => db?.drop());

const h = autoTopUpHelpers(() => db);
const credits = creditHelpers(() => db);

test("a fall to or below the threshold starts one attempt and queues its job; grants and falls above it do not", async () => {
  const { org, owner } = await h.orgWithCard();
  await h.grant(org.id, 900); // 100 (allowance) + 900
  await h.setRule(owner, org.id, pack, 500);
  await h.spend(org.id, 400); // 1000 → 600: above
  await h.grant(org.id, 10);
  expect(await h.attempts(org.id)).toEqual([]);
  await h.spend(org.id, 110); // 610 → 500: at the threshold
  const [attempt] = await h.attempts(org.id);
  expect(attempt).toMatchObject({ status: "pending", quantity: 1, credits: 1000, amount: 1900, currency: "usd" });
  const jobs = await h.jobs("auto_top_up", org.id);
  expect(jobs).toEqual([{ key: `auto-top-up:${org.id}`, payload: { organizationId: org.id, attemptId: attempt.id } }]);
  // further spends while it is open: still one
  await h.spend(org.id, 100);
  expect(await h.attempts(org.id)).toHaveLength(1);
});

test("with a target balance, enough packs to reach it (within the money ceiling)", async () => {
  const { org, owner } = await h.orgWithCard();
  await h.setRule(owner, org.id, pack, 50, 5, 3 * 1900, 3500);
  await h.spend(org.id, 90); // 100 → 10: 3,490 missing → 4 packs, but the ceiling pays for 3
  expect(await h.attempts(org.id)).toMatchObject([{ quantity: 3, credits: 3000, amount: 5700 }]);
});

test("50 concurrent spends crossing the threshold create exactly one attempt and one job", async () => {
  const { org, owner } = await h.orgWithCard();
  await setPlan(db, org.id, "enterprise");
  await h.grant(org.id, 4900); // 5,000 available
  await h.setRule(owner, org.id, pack, 4000);
  // 25 connections, 50 spends as the member's requests would make them, all at once
  const users = new pg.Pool({ connectionString: db.authUrl, max: 25 });
  users.on("error", () => {});
  try {
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) =>
        withSettings(users, actorSettings(owner), (c) => c.query("select app_public.reserve_credits($1, 40, $2, 900)", [org.id, `k${i}`])),
      ),
    );
    expect(results.filter((r) => r.status === "rejected")).toEqual([]);
  } finally {
    await users.end();
  }
  expect((await credits.account(org.id)).available).toBe(3000);
  const attempts = await h.attempts(org.id);
  expect(attempts).toHaveLength(1);
  expect(await h.jobs("auto_top_up", org.id)).toHaveLength(1);
  await credits.expectConsistent();
});
