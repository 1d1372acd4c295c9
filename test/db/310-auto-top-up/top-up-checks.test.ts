// The nightly auto top-up check (db/functions/310-auto-top-up/top-up-checks.sql): empty when every
// organization stayed within the rule it had when each attempt started; names the attempt that
// went past the monthly count or the money ceiling otherwise (rows written behind the rule's
// back, as a bug would).

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { autoTopUpHelpers, setUpAutoTopUp } from "../../helpers/auto-top-up.ts";

let db: TestDatabase;
let pack: string;
beforeAll(async () => {
  db = await createTestDatabase();
  pack = await setUpAutoTopUp(db);
});
afterAll(() => db?.drop());

const h = autoTopUpHelpers(() => db);
const discrepancies = () => db.owner.query("select * from app_private.auto_top_up_discrepancies()").then((r) => r.rows);

async function insertAttempt(org: string, status: string, amount: number, maxPerMonth: number, limit: number) {
  await db.owner.query(
    `insert into app_public.auto_top_up_attempts (organization_id, status, credit_package_id, quantity, credits, amount, currency,
       balance_before, rule_max_per_month, rule_monthly_limit_amount) values ($1, $2, $3, 1, 1000, $4, 'usd', 0, $5, $6)`,
    [org, status, pack, amount, maxPerMonth, limit],
  );
}

test("within the rule: nothing; one more than maxPerMonth, or money past the ceiling: that attempt", async () => {
  const { org } = await h.orgWithCard();
  await insertAttempt(org.id, "succeeded", 1900, 2, 10000);
  await insertAttempt(org.id, "canceled", 1900, 2, 10000); // never reached Stripe: not counted
  await insertAttempt(org.id, "failed", 1900, 2, 10000);
  expect(await discrepancies()).toEqual([]);
  await insertAttempt(org.id, "succeeded", 1900, 2, 10000);
  expect(await discrepancies()).toMatchObject([{ organization_id: org.id, nth: "3", max_per_month: 2 }]);

  const other = await h.orgWithCard();
  await insertAttempt(other.org.id, "succeeded", 1900, 10, 3000);
  await insertAttempt(other.org.id, "failed", 1900, 10, 3000); // declined: no money
  expect((await discrepancies()).filter((d) => d.organization_id === other.org.id)).toEqual([]);
  await insertAttempt(other.org.id, "processing", 1900, 10, 3000);
  expect((await discrepancies()).filter((d) => d.organization_id === other.org.id)).toMatchObject([{ amount_so_far: "3800", monthly_limit_amount: "3000" }]);
});
