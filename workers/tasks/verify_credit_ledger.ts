// Nightly: recomputes every organization's credit balance from the ledger (and from its grants
// and open reservations) and its usage counters from scratch, checks that every running
// generation holds an open reservation of its own, that what each spend cap counts as spent in
// its window is the open charges plus the captures in it, and that no organization was topped
// up more often (or for more money) in a month than its auto top-up rule allowed, and logs an
// error naming each organization that differs. Read-only, so safe to run any number of times. It does not repair:
// a difference means a bug, and a person should look at it.

import type { Task } from "graphile-worker";

export const VERIFY_CREDIT_LEDGER_TASK = "verify_credit_ledger";

export const verifyCreditLedger: Task = async (_payload, helpers) => {
  const credits = await helpers.withPgClient((client) => client.query("select * from app_private.credit_ledger_discrepancies()"));
  for (const row of credits.rows) {
    helpers.logger.error(
      `${VERIFY_CREDIT_LEDGER_TASK}: organization ${row.organization_id} credit account differs from its ledger: ` +
        `available ${row.available} (ledger ${row.ledger_available}, grants ${row.grants_remaining}), ` +
        `reserved ${row.reserved} (ledger ${row.ledger_reserved}, open reservations ${row.open_reserved}, allocated ${row.allocated})`,
    );
  }
  const counters = await helpers.withPgClient((client) => client.query("select * from app_private.usage_counter_discrepancies()"));
  for (const row of counters.rows) {
    helpers.logger.error(
      `${VERIFY_CREDIT_LEDGER_TASK}: organization ${row.organization_id} usage counter ${row.counter} is ${row.stored}, recomputed ${row.recomputed}`,
    );
  }
  const generations = await helpers.withPgClient((client) =>
    client.query("select * from app_private.generation_reservation_discrepancies()"),
  );
  for (const row of generations.rows) {
    helpers.logger.error(
      `${VERIFY_CREDIT_LEDGER_TASK}: organization ${row.organization_id} generation ${row.generation_id} is running but its reservation ${row.reservation_id} is ${row.reservation_status}`,
    );
  }
  const caps = await helpers.withPgClient((client) => client.query("select * from app_private.spend_cap_window_discrepancies()"));
  for (const row of caps.rows) {
    helpers.logger.error(
      `${VERIFY_CREDIT_LEDGER_TASK}: organization ${row.organization_id} spend cap ${row.cap_id} (${row.scope}) counts ${row.window_spent} spent ` +
        `since ${new Date(row.window_start).toISOString()}, but its open charges are ${row.open_charged} and its captures ${row.captured}`,
    );
  }
  const topUps = await helpers.withPgClient((client) => client.query("select * from app_private.auto_top_up_discrepancies()"));
  for (const row of topUps.rows) {
    helpers.logger.error(
      `${VERIFY_CREDIT_LEDGER_TASK}: organization ${row.organization_id} auto top-up attempt ${row.attempt_id} is number ${row.nth} of its month ` +
        `(rule: ${row.max_per_month}) with ${row.amount_so_far} charged so far (ceiling ${row.monthly_limit_amount})`,
    );
  }
  const ok =
    credits.rows.length === 0 && counters.rows.length === 0 && generations.rows.length === 0 &&
    caps.rows.length === 0 && topUps.rows.length === 0;
  if (ok) helpers.logger.info(`${VERIFY_CREDIT_LEDGER_TASK}: all balances and counters agree`);
  // The result shows in /readyz details and as a /metrics series (server/health.ts).
  await helpers.withPgClient((client) =>
    client.query("select app_private.record_check('credit_ledger', $1, $2)", [
      ok,
      JSON.stringify({
        creditDiscrepancies: credits.rows.length,
        counterDiscrepancies: counters.rows.length,
        generationDiscrepancies: generations.rows.length,
        spendCapDiscrepancies: caps.rows.length,
        autoTopUpDiscrepancies: topUps.rows.length,
      }),
    ]),
  );
};
