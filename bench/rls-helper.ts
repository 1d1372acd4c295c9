// node bench/rls-helper.ts — what the form of a tenant policy costs, on the bench:api data set
// (BENCH_GENERATIONS / BENCH_PROJECTS_PER_ORG pick a smaller one, as for bench:api). The same
// list query as app_user, every transaction opened as the server opens a request
// (app_hidden.start_request()), interleaved, with the generations policy in three forms:
//   setting:  organization_id = any (current_setting('tenantbase.organization_ids')::uuid[])
//             (what db/policies uses: no subquery, no function of ours)
//   initplan: organization_id = any ((select <helper>())::uuid[]), the helper being the former
//             SECURITY DEFINER PL/pgSQL membership lookup with its own search_path
//   initplan, cheap helper: the same subquery form over a plain SQL function reading the setting
// and the owner with an explicit WHERE as the baseline. Puts db/policies back at the end.
import pg from "pg";
import { benchDatabase } from "./lib/cluster.ts";
import { interleaved } from "./lib/load.ts";
import { asOwner, asUser, authPool, benchMembers } from "./lib/sql.ts";
import { applySchema } from "../db/apply-schema.ts";

const GENERATIONS = Number(process.env.BENCH_GENERATIONS ?? 1_000_000);
const PROJECTS = Number(process.env.BENCH_PROJECTS_PER_ORG ?? 1000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const db = await benchDatabase(GENERATIONS === 1_000_000 && PROJECTS === 1000 ? "api" : `api_${GENERATIONS}_${PROJECTS}`);
const members = await benchMembers(db.ownerUrl);
const owner = new pg.Client({ connectionString: db.ownerUrl });
await owner.connect();
const SQL = `select id, project_id, kind, model, status, credits_charged, created_at from app_public.generations where organization_id = $1 order by created_at desc, id desc limit 20`;
const ownerPool = new pg.Pool({ connectionString: db.ownerUrl, max: 16 });

async function policy(using: string) {
  await owner.query(`drop policy select_member on app_public.generations; create policy select_member on app_public.generations for select to app_user using (${using})`);
}
const measure = async (label: string) => {
  const pool = authPool(db.authUrl, 16);
  const [r] = await interleaved(1, 16, SECONDS, [
    [label, (_c, i) => { const m = members[i % members.length]; return asUser(pool, m.userId, m.sessionId, SQL, [m.organizationId]).then(() => {}); }],
  ]);
  await pool.end();
  return r;
};
try {
  await owner.query(`
    create or replace function app_hidden.bench_former_organization_ids() returns uuid[]
      language plpgsql stable security definer parallel safe
      set search_path = pg_catalog, public
    as $f$
    begin
      return (select coalesce(array_agg(m.organization_id), '{}') from app_public.organization_members m
              join app_public.organizations o on o.id = m.organization_id
              where m.user_id = app_public.current_user_id() and o.deleted_at is null);
    end;
    $f$;
    grant execute on function app_hidden.bench_former_organization_ids() to app_user;
    create or replace function app_hidden.bench_setting_organization_ids() returns uuid[]
      language sql stable parallel safe
    as $f$ select current_setting('tenantbase.organization_ids')::uuid[] $f$;
    grant execute on function app_hidden.bench_setting_organization_ids() to app_user;`);
  const forms: [string, string][] = [
    ["setting (db/policies)", "organization_id = any (current_setting('tenantbase.organization_ids')::uuid[])"],
    ["initplan, former definer helper", "organization_id = any ((select app_hidden.bench_former_organization_ids())::uuid[])"],
    ["initplan, SQL helper reading the setting", "organization_id = any ((select app_hidden.bench_setting_organization_ids())::uuid[])"],
  ];
  const results = new Map<string, { ok: number; seconds: number }>();
  const add = (label: string, r: { ok: number; seconds: number }) => {
    const prev = results.get(label) ?? { ok: 0, seconds: 0 };
    results.set(label, { ok: prev.ok + r.ok, seconds: prev.seconds + r.seconds });
  };
  for (let round = 0; round < ROUNDS; round++) {
    for (const [label, using] of forms) {
      await policy(using);
      add(label, await measure(label));
    }
    const [o] = await interleaved(1, 16, SECONDS, [
      ["owner, explicit WHERE", (_c, i) => { const m = members[i % members.length]; return asOwner(ownerPool, m.userId, m.sessionId, SQL, [m.organizationId]).then(() => {}); }],
    ]);
    add("owner, explicit WHERE", o);
  }
  const base = results.get("owner, explicit WHERE")!;
  console.log(`\npolicy form on generations: list query as app_user, 16 clients, ${ROUNDS} x ${SECONDS} s each, interleaved`);
  for (const [label, r] of results) {
    console.log(`  ${label.padEnd(44)} ${(r.ok / r.seconds).toFixed(1).padStart(9)} req/s   ÷ owner WHERE ${(r.ok / r.seconds / (base.ok / base.seconds)).toFixed(3)}`);
  }
} finally {
  await owner.query("drop function if exists app_hidden.bench_former_organization_ids(); drop function if exists app_hidden.bench_setting_organization_ids()").catch(() => {});
  await applySchema(db.ownerUrl, { force: true });
  await owner.end();
  await ownerPool.end();
  await db.stop();
}
