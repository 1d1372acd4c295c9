// Runs one of the batch functions (period rollover, expiries, hard delete, pruning) and reports
// the organizations it could not handle. The SQL handles each organization in a subtransaction
// of its own and, for each one that failed, counts it (tenantbase_jobs_total{outcome=
// "organization_failed"}) and raises a WARNING 'organization_failed' with the details as JSON
// (db/functions/400-operations/batch-failures.sql). Here each becomes an error log line naming
// the organization. The job itself succeeds: the others were handled, and the failed ones are
// still due, so the next scheduled run tries them again.

import type { JobHelpers } from "graphile-worker";

export interface OrganizationFailure {
  task: string;
  organizationId: string;
  code: string;
  message: string;
}

/** The fields of a PostgreSQL notice this reads. */
interface Notice {
  message?: string;
  detail?: string;
}

export function organizationFailure(notice: Notice): OrganizationFailure | null {
  if (notice.message !== "organization_failed" || !notice.detail) return null;
  try {
    return JSON.parse(notice.detail) as OrganizationFailure;
  } catch {
    return null;
  }
}

/** Runs `sql` (one statement returning one row) and logs every organization that failed in it. */
export async function runBatch<Row extends Record<string, unknown>>(
  helpers: JobHelpers,
  sql: string,
  values: unknown[] = [],
): Promise<{ row: Row; failures: OrganizationFailure[] }> {
  const failures: OrganizationFailure[] = [];
  const row = await helpers.withPgClient(async (client) => {
    const onNotice = (notice: Notice) => {
      const failure = organizationFailure(notice);
      if (failure) failures.push(failure);
    };
    client.on("notice", onNotice);
    try {
      return (await client.query<Row>(sql, values)).rows[0];
    } finally {
      client.off("notice", onNotice);
    }
  });
  for (const failure of failures) {
    helpers.logger.error(
      `${failure.task}: organization ${failure.organizationId} failed (${failure.code}: ${failure.message}); the others were handled, it is retried on the next run`,
    );
  }
  return { row, failures };
}
