// Daily: organizations soft-deleted more than 30 days ago are deleted for good, cascading
// through every tenant table (app_private.hard_delete_organizations). Idempotent.

import type { Task } from "graphile-worker";
import { runBatch } from "../batch.ts";

export const HARD_DELETE_ORGANIZATIONS_TASK = "hard_delete_organizations";

export const hardDeleteOrganizations: Task = async (_payload, helpers) => {
  const { row } = await runBatch<{ n: number }>(helpers, "select app_private.hard_delete_organizations() as n");
  helpers.logger.info(`${HARD_DELETE_ORGANIZATIONS_TASK}: ${row.n} organization(s) deleted`);
};
