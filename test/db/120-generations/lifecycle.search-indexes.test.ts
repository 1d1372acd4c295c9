// The indexes behind metadata containment and prompt search on generations (declared in the
// migrations): the queries' expressions and operators match them. Beside lifecycle.test.ts
// because its set-up (20,000 generations) is slow and unrelated to the lifecycle rules.

import { createTestDatabase, type TestDatabase } from "../../helpers/db.ts";
import { createOrganization, createUser, type TestUser } from "../../helpers/fixtures.ts";
import { generationHelpers } from "../../helpers/generations.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db?.drop());

const { project } = generationHelpers(() => db);

describe("indexes serve metadata containment and prompt search", () => {
  let user: TestUser;
  let orgId: string;
  beforeAll(async () => {
    user = await createUser(db);
    orgId = (await createOrganization(db, user, "Many")).id;
    await project(user, orgId, "Bulk");
    // 20,000 finished generations, made directly as the owner (the functions are tested above):
    // this user's organization holds 39/40 of them (a big tenant, where indexes matter), 39 others
    // the rest; one row in 200 per model, one prompt in 500 about an orange kitten, the rest random.
    await db.owner.query(`
      with orgs as (
        insert into app_public.organizations (slug, name) select 'bulk-' || n, 'Bulk ' || n from generate_series(1, 39) n returning id
      ) insert into app_public.projects (organization_id, name) select id, 'Bulk' from orgs`);
    await db.owner.query(`
      with orgs as (select organization_id, id as project_id, row_number() over () - 1 as i from app_public.projects
                    where name = 'Bulk' and (organization_id = $1 or organization_id in (select id from app_public.organizations where slug like 'bulk-%')))
      insert into app_public.credit_reservations (organization_id, id, amount, status, captured_amount, idempotency_key, expires_at, settled_at)
      select o.organization_id, app_hidden.uuid_generate_v7(), 1, 'captured', 1, 'bulk-' || n, now(), now()
      from generate_series(1, 20000) n join orgs o on o.i = case when n % 40 = 0 then n / 40 % 40 else (select i from orgs where organization_id = $1) end`, [orgId]);
    await db.owner.query(`
      insert into app_public.generations (organization_id, project_id, kind, model, status, credits_estimated, credits_charged, reservation_id, idempotency_key, metadata, completed_at)
      select r.organization_id, p.id, (array['image','video','text']::app_public.generation_kind[])[1 + n % 3],
             'model-' || (n % 200), 'succeeded', 1, 1, r.id, r.idempotency_key,
             jsonb_build_object('model', 'model-' || (n % 200), 'seed', n,
               'prompt', case when n % 500 = 1 then 'a fluffy orange kitten, variation ' || n else 'photo of ' || md5(n::text) end),
             now()
      from (select r.*, substr(r.idempotency_key, 6)::int as n from app_public.credit_reservations r where r.idempotency_key like 'bulk-%') r
      join app_public.projects p on p.organization_id = r.organization_id and p.name = 'Bulk'`);
    await db.owner.query("analyze app_public.generations");
  });

  // At 20,000 rows a sequential scan, or the tenant's btree index plus a filter, is honestly the
  // cheaper plan (and under RLS the planner guesses the tenant filter selective), so here the
  // owner asks without those alternatives: what this proves is that the query's expression and
  // operator match the index, the part a refactor can silently break. bench/ prints the plans the
  // planner picks under RLS at 1M rows.
  async function plan(sql: string, values: unknown[]) {
    const client = await db.owner.connect();
    try {
      await client.query("begin");
      await client.query("set local enable_seqscan = off");
      const { rows } = await client.query(`explain (format json) ${sql}`, values);
      await client.query("rollback");
      return JSON.stringify(rows[0]["QUERY PLAN"]);
    } finally {
      client.release();
    }
  }

  test("metadata @> '{\"model\": …}' matches the GIN index; members find exactly their rows", async () => {
    const json = await plan(`select id from app_public.generations where metadata @> $1::jsonb`, [JSON.stringify({ model: "model-7" })]);
    expect(json).toContain("generations_metadata_idx");
    const { rows } = await db.queryAs(user, `select count(*)::int as n from app_public.generations where metadata @> '{"model": "model-7"}'`);
    expect(rows[0].n).toBe(100);
  });

  test("fuzzy prompt search uses the pg_trgm index and tolerates typos", async () => {
    const json = await plan(`select id from app_public.generations where (metadata ->> 'prompt') %> $1`, ["orange kiten"]);
    expect(json).toContain("generations_prompt_trgm_idx");
    const { rows } = await db.queryAs(user, `select count(*)::int as n, bool_and(metadata->>'prompt' like 'a fluffy orange kitten%') as all_kittens
      from app_public.generations where (metadata ->> 'prompt') %> 'orange kiten'`);
    expect(rows[0]).toEqual({ n: 40, all_kittens: true });
  });
});
