// Daily: organizations soft-deleted more than 30 days ago are deleted for good, cascading
// through every tenant table (app_private.hard_delete_organizations). Idempotent.

import type { Task } from "graphile-worker";

export const HARD_DELETE_ORGANIZATIONS_TASK = "hard_delete_organizations";

export const hardDeleteOrganizations: Task = async (_payload, helpers) => {
  const { rows } = await helpers.withPgClient((client) =>
    client.query("select app_private.hard_delete_organizations() as n"),
  );
  helpers.logger.info(`${HARD_DELETE_ORGANIZATIONS_TASK}: ${rows[0].n} organization(s) deleted`);
};
