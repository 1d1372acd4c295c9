// Shared set-up of the credit tests (test/db/110-credits, 120-generations): balances, the
// ledger invariant, an organization without credits, and the three public credit mutations
// called as a member. Takes a getter because each test file creates its database in beforeAll.

import type { TestDatabase } from "./db.ts";
import { createOrganization, createUser, type TestUser } from "./fixtures.ts";

export function creditHelpers(getDb: () => TestDatabase) {
  async function account(organizationId: string) {
    const { rows } = await getDb().owner.query(
      "select available::int, reserved::int from app_public.credit_accounts where organization_id = $1",
      [organizationId],
    );
    return rows[0];
  }

  async function ledgerCount(organizationId: string): Promise<number> {
    const { rows } = await getDb().owner.query("select count(*)::int as n from app_public.credit_ledger where organization_id = $1", [organizationId]);
    return rows[0].n;
  }

  /** balance = sum(ledger) = sum(grants), reserved = open reservations, for every organization. */
  async function expectConsistent() {
    const { rows } = await getDb().owner.query("select * from app_private.credit_ledger_discrepancies()");
    expect(rows).toEqual([]);
  }

  /** An organization with no credits at all (its monthly allowance debited away). */
  async function emptyOrganization(owner?: TestUser) {
    const db = getDb();
    owner ??= await createUser(db);
    const org = await createOrganization(db, owner, "Credits Org");
    await db.owner.query("select app_private.debit_credits($1, 100, 'manual', null)", [org.id]);
    return { org, owner };
  }

  const reserve = (user: TestUser, org: string, amount: unknown, key: string, ttl: number | null = 900) =>
    getDb().queryAs(user, "select * from app_public.reserve_credits($1, $2, $3, $4)", [org, amount, key, ttl]).then((r) => r.rows[0]);
  const capture = (user: TestUser, id: string, amount: unknown = null, key: string | null = null) =>
    getDb().queryAs(user, "select * from app_public.capture_credits($1, $2, $3)", [id, amount, key]).then((r) => r.rows[0]);
  const release = (user: TestUser, id: string, key: string | null = null) =>
    getDb().queryAs(user, "select * from app_public.release_credits($1, $2)", [id, key]).then((r) => r.rows[0]);

  return { account, ledgerCount, expectConsistent, emptyOrganization, reserve, capture, release };
}

/**
 * Waits, if need be, until the UTC day has at least `margin` seconds left, so that a test's caps
 * (days, weeks, months), alert periods, allowance and auto top-up month cannot turn under it.
 */
export async function awayFromTheDayTurn(db: TestDatabase, margin = 30): Promise<void> {
  const { rows } = await db.owner.query(
    "select extract(epoch from app_hidden.spend_cap_window_end('day', app_hidden.spend_cap_window_start('day', now())) - clock_timestamp()) as left");
  const left = Number(rows[0].left);
  if (left < margin) await new Promise((resolve) => setTimeout(resolve, (left + 1) * 1000));
}
