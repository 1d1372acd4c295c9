// Generates a benchmark data set in SQL (generate_series, set-based inserts, indexes built after
// the load), with a progress bar. Organizations are on the enterprise plan; organization 1 is
// the "big" one (bigOrgGenerations of the generations); member n is the owner of organization n.

import pg from "pg";
import { benchDatabase, completedDataset, markComplete, type BenchDatabase } from "./cluster.ts";

export interface DatasetSpec {
  organizations: number;
  projectsPerOrganization: number;
  generations: number;
  /** Generations of organization 1 (the rest spread evenly over the others). */
  bigOrganizationGenerations: number;
  /** created_at spread over this many past days. */
  days: number;
}

export function describe(spec: DatasetSpec): string {
  const n = (x: number) => x.toLocaleString("en-US");
  return `${n(spec.organizations)} organizations, ${n(spec.organizations * spec.projectsPerOrganization)} projects, ` +
    `${n(spec.generations)} generations (organization 1: ${n(spec.bigOrganizationGenerations)}) over ${spec.days} days`;
}

function bar(done: number, total: number, started: number, label: string) {
  const width = 30;
  const filled = Math.round((done / total) * width);
  process.stderr.write(
    `\r  ${label} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${Math.round((done / total) * 100)
      .toString()
      .padStart(3)}% ${done.toLocaleString("en-US")}/${total.toLocaleString("en-US")} ${((Date.now() - started) / 1000).toFixed(0)} s   `,
  );
  if (done >= total) process.stderr.write("\n");
}

export async function ensureDataset(name: string, spec: DatasetSpec, log: (line: string) => void = console.log): Promise<BenchDatabase> {
  const description = describe(spec);
  let db = await benchDatabase(name, log);
  if (!db.fresh && (await completedDataset(db)) === description) {
    log(`data set ${db.name}: ${description} (reused)`);
    return db;
  }
  if (!db.fresh) {
    await db.stop();
    db = await benchDatabase(name, log, true);
  }
  log(`generating ${db.name}: ${description}`);
  const client = new pg.Client({ connectionString: db.ownerUrl });
  await client.connect();
  const q = (sql: string, values?: unknown[]) => client.query(sql, values);
  const t0 = Date.now();
  try {
    const N = spec.organizations;
    await q(`insert into app_public.users (email, name) select 'bench-' || n || '@example.com', 'Bench ' || n from generate_series(1, $1::int) n`, [N]);
    await q(`insert into app_private.sessions (user_id, expires_at) select id, now() + interval '30 days' from app_public.users where email like 'bench-%'`);
    // one statement per 1,000: the organization triggers (counters, credit account, allowance) run per row
    for (let from = 1; from <= N; from += 1000) {
      await q(`insert into app_public.organizations (slug, name, plan_id)
               select 'bench-org-' || n, 'Bench Org ' || n, 'enterprise' from generate_series($1::int, least($2::int, $1::int + 999)) n`, [from, N]);
      bar(Math.min(N, from + 999), N, t0, "organizations");
    }
    await q(`create table app_private.bench_org (n int primary key, organization_id uuid not null, user_id uuid not null)`);
    await q(`insert into app_private.bench_org
             select substr(o.slug, 11)::int, o.id, u.id from app_public.organizations o
             join app_public.users u on u.email = 'bench-' || substr(o.slug, 11) || '@example.com'
             where o.slug like 'bench-org-%'`);
    const { rows: mapped } = await q("select count(*)::int as n from app_private.bench_org");
    if (mapped[0].n !== N) throw new Error(`bench_org maps ${mapped[0].n} of ${N} organizations`);
    await q(`insert into app_public.organization_members (organization_id, user_id, role) select organization_id, user_id, 'owner' from app_private.bench_org`);

    // projects: triggers off for the load, counters set from the result
    const P = spec.projectsPerOrganization;
    await q(`alter table app_public.projects disable trigger user`);
    await q(`insert into app_public.projects (organization_id, name, created_at)
             select b.organization_id, 'Project ' || k, now() - (k || ' minutes')::interval
             from app_private.bench_org b, generate_series(1, $1::int) k`, [P]);
    await q(`alter table app_public.projects enable trigger user`);
    await q(`update app_public.usage_counters c set project_count = p.n
             from (select organization_id, count(*) n from app_public.projects group by 1) p where p.organization_id = c.organization_id`);
    log(`  projects: ${(N * P).toLocaleString("en-US")} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
    await q(`create table app_private.bench_project (n int, k int, organization_id uuid, project_id uuid, primary key (n, k))`);
    await q(`insert into app_private.bench_project
             select b.n, (row_number() over (partition by p.organization_id order by p.id) - 1)::int, p.organization_id, p.id
             from app_public.projects p join app_private.bench_org b using (organization_id)`);
    await q(`delete from app_private.bench_project where k >= 10`);

    // one settled reservation per organization that all historic generations point at
    await q(`insert into app_public.credit_reservations (organization_id, amount, status, captured_amount, idempotency_key, expires_at, settled_at)
             select organization_id, 1, 'captured', 1, 'bench-history', now(), now() from app_private.bench_org`);

    // generations: secondary indexes dropped for the load and rebuilt after, triggers off
    const { rows: indexes } = await q(`select indexname, indexdef from pg_indexes
      where schemaname = 'app_public' and tablename = 'generations' and indexname not like '%_pkey' and indexname not like '%idempotency_key'`);
    for (const index of indexes) await q(`drop index app_public.${index.indexname}`);
    await q(`alter table app_public.generations disable trigger user`);
    const G = spec.generations;
    const B = spec.bigOrganizationGenerations;
    const chunk = 250_000;
    const tg = Date.now();
    for (let from = 1; G > 0 && from <= G; from += chunk) {
      const to = Math.min(G, from + chunk - 1);
      await q(`
        insert into app_public.generations (organization_id, project_id, kind, model, status, credits_estimated, credits_charged,
          reservation_id, idempotency_key, metadata, error, completed_at, created_at, created_by)
        select p.organization_id, p.project_id,
          (array['image','image','video','text','audio']::app_public.generation_kind[])[1 + s.n % 5],
          'model-' || (s.n % 20),
          st.status, 10, case st.status when 'succeeded' then 1 + s.n % 10 when 'failed' then 0 end,
          r.id, 'bench-' || s.n,
          jsonb_build_object('model', 'model-' || (s.n % 20), 'seed', s.n,
            'prompt', (array['a fluffy orange kitten','a red sports car at night','snowy mountains at dawn','portrait of an old sailor',
                             'a bowl of ramen','city skyline in the rain','a watercolor fox','an astronaut riding a horse'])[1 + s.n % 8] || ' #' || (s.n % 1000)),
          case st.status when 'failed' then 'provider error' end,
          case when st.status in ('succeeded', 'failed') then s.created_at end,
          s.created_at, b.user_id
        from (select n, case when n <= $3::int then 1 else 2 + (n % ($4::int - 1)) end as org_no,
                     now() - ((n::bigint * 7919) % ($5::bigint * 86400)) * interval '1 second' as created_at
              from generate_series($1::int, $2::int) n) s
        cross join lateral (select (case when s.n % 20 < 16 then 'succeeded' when s.n % 20 < 19 then 'failed' else 'running' end)::app_public.generation_status as status) st
        join app_private.bench_org b on b.n = s.org_no
        join app_private.bench_project p on p.n = s.org_no and p.k = s.n % least(10, $6::int)
        join app_public.credit_reservations r on r.organization_id = b.organization_id and r.idempotency_key = 'bench-history'`,
        [from, to, B, N, spec.days, P]);
      bar(to, G, tg, "generations");
    }
    await q(`alter table app_public.generations enable trigger user`);
    let i = 0;
    const ti = Date.now();
    for (const index of indexes) {
      if (G >= 100_000) bar(i, indexes.length, ti, `indexes (${index.indexname})`.padEnd(48));
      await q(index.indexdef);
      i++;
    }
    if (G >= 100_000) bar(indexes.length, indexes.length, ti, "indexes".padEnd(48));
    await q(`select app_private.rebuild_generation_usage_daily()`);
    await q(`vacuum (analyze) app_private.generation_usage_daily`);
    await q(`update app_public.usage_counters c set generations = g.n
             from (select g.organization_id, count(*) n from app_public.generations g
                   join app_public.usage_counters c2 on c2.organization_id = g.organization_id and g.created_at >= c2.period_start
                   group by 1) g where g.organization_id = c.organization_id`);
    await q(`vacuum (analyze) app_public.generations`);
    await q(`analyze`);
  } finally {
    await client.end();
  }
  await markComplete(db, description);
  log(`  done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return db;
}
