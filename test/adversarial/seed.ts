// Bulk data for the adversarial tests: an organization with many finished generations, made
// directly (the generation functions have their own tests).

import type { TestDatabase } from "../helpers/db.ts";

/**
 * `count` succeeded generations in `organizationId`, prompts of ~40 random characters. Inserted
 * as the superuser with triggers off (session_replication_role = replica): through the
 * counter and rollup triggers 20k rows took minutes on a busy machine, and these tests are about
 * reading them, not about the counters.
 */
export async function seedGenerations(db: TestDatabase, organizationId: string, count: number): Promise<void> {
  const started = Date.now();
  const client = await db.root.connect();
  try {
    await client.query("begin");
    await client.query("set local session_replication_role = replica");
    await insert(client, organizationId, count);
    await client.query("commit");
  } catch (error) {
    await client.query("rollback");
    throw error;
  } finally {
    client.release();
  }
  await db.owner.query("analyze app_public.generations");
  if (process.env.SEED_TIMING) console.log(`seeded ${count} generations in ${Date.now() - started} ms`);
}

async function insert(db: Pick<TestDatabase["owner"], "query">, organizationId: string, count: number): Promise<void> {
  const { rows } = await db.query(
    "insert into app_public.projects (organization_id, name) values ($1, 'Seeded') returning id",
    [organizationId],
  );
  const projectId = rows[0].id;
  await db.query(
    `insert into app_public.credit_reservations (organization_id, id, amount, status, captured_amount, idempotency_key, expires_at, settled_at)
     select $1, app_hidden.uuid_generate_v7(), 1, 'captured', 1, 'seed-' || n, now(), now() from generate_series(1, $2::int) n`,
    [organizationId, count],
  );
  await db.query(
    `insert into app_public.generations (organization_id, project_id, kind, model, status, credits_estimated, credits_charged,
                                         reservation_id, idempotency_key, metadata, completed_at)
     select r.organization_id, $2, 'image', 'model-' || (n % 20), 'succeeded', 1, 1, r.id, r.idempotency_key,
            jsonb_build_object('prompt', 'photo of ' || md5(n::text) || ' number ' || n, 'seed', n), now()
     from (select r.*, substr(r.idempotency_key, 6)::int as n from app_public.credit_reservations r
           where r.organization_id = $1 and r.idempotency_key like 'seed-%') r`,
    [organizationId, projectId],
  );
}
