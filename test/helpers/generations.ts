// Shared set-up of the generation tests: a project, and start / complete / fail called as a member.

import type { TestDatabase } from "./db.ts";
import type { TestUser } from "./fixtures.ts";

export function generationHelpers(getDb: () => TestDatabase) {
  async function project(user: TestUser, organizationId: string, name = "Images") {
    const { rows } = await getDb().queryAs(user, "insert into app_public.projects (organization_id, name) values ($1, $2) returning id", [organizationId, name]);
    return rows[0].id as string;
  }
  const start = (user: TestUser, org: string, projectId: string, credits: unknown, key: string, metadata: unknown = { prompt: "a cat" }, kind = "image", model = "flux-1") =>
    getDb().queryAs(user, "select * from app_public.start_generation($1, $2, $3, $4, $5, $6, $7)", [org, projectId, kind, model, metadata === undefined ? null : JSON.stringify(metadata), credits, key]).then((r) => r.rows[0]);
  const complete = (user: TestUser, id: string, credits: unknown, result: unknown = null) =>
    getDb().queryAs(user, "select * from app_public.complete_generation($1, $2, $3)", [id, credits, result === null ? null : JSON.stringify(result)]).then((r) => r.rows[0]);
  const fail = (user: TestUser, id: string, error: string | null = "provider timeout") =>
    getDb().queryAs(user, "select * from app_public.fail_generation($1, $2)", [id, error]).then((r) => r.rows[0]);
  return { project, start, complete, fail };
}
