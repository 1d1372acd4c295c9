// Shared set-up of the plan, counter and limit tests (test/db/100-plans).

import type { TestDatabase } from "./db.ts";

export function planHelpers(getDb: () => TestDatabase) {
  async function counters(organizationId: string) {
    const { rows } = await getDb().owner.query("select * from app_public.usage_counters where organization_id = $1", [organizationId]);
    return rows[0];
  }
  /** Every counter equals what a recount from the tables gives. */
  async function expectCountersExact() {
    const { rows } = await getDb().owner.query("select * from app_private.usage_counter_discrepancies()");
    expect(rows).toEqual([]);
  }
  return { counters, expectCountersExact };
}
