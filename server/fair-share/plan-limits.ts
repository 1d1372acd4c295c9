// An organization's in-flight limit from its plan (plans.max_concurrent_requests), remembered
// for a minute per organization so that the lookup is not a query per request. Only API-key
// requests know their organization before SQL runs, so only they are counted per organization.

import type pg from "pg";

const TTL_MS = 60_000;
const MAX_ENTRIES = 10_000;

export function planLimits(ownerPool: pg.Pool, fallback: number) {
  const cache = new Map<string, { limit: number; expiresAt: number }>();
  return async function organizationLimit(organizationId: string): Promise<number> {
    const hit = cache.get(organizationId);
    if (hit && hit.expiresAt > Date.now()) return hit.limit;
    let limit = fallback;
    try {
      const { rows } = await ownerPool.query(
        "select p.max_concurrent_requests as n from app_private.organization_plan($1) p",
        [organizationId],
      );
      if (typeof rows[0]?.n === "number") limit = rows[0].n;
    } catch {
      // the database is busy or away: the default holds until the next lookup
      return hit?.limit ?? fallback;
    }
    if (cache.size >= MAX_ENTRIES) cache.delete(cache.keys().next().value!);
    cache.delete(organizationId);
    cache.set(organizationId, { limit, expiresAt: Date.now() + TTL_MS });
    return limit;
  };
}
