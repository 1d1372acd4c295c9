// node bench/rls-helper.ts — diagnostic behind the bench:api finding (README, "Plans, limits, credits"): what the
// RLS helper current_user_organization_ids() costs as a SQL function (planned on every call:
// SECURITY DEFINER functions are never inlined) next to the same logic in PL/pgSQL (plans cached
// per connection), measured on the bench:api data set. Restores the original definition at the end.
import pg from "pg";
import { benchDatabase } from "./lib/cluster.ts";
import { interleaved, printTable } from "./lib/load.ts";
import { asUser, authPool, benchMembers } from "./lib/sql.ts";
const db = await benchDatabase("api");
const members = await benchMembers(db.ownerUrl);
const owner = new pg.Client({ connectionString: db.ownerUrl });
await owner.connect();
const original = (await owner.query("select pg_get_functiondef('app_public.current_user_organization_ids(app_public.organization_role)'::regprocedure) as d")).rows[0].d;
const SQL = `select id, project_id, kind, model, status, credits_charged, created_at from app_public.generations where organization_id = $1 order by created_at desc, id desc limit 20`;
const ownerPool = new pg.Pool({ connectionString: db.ownerUrl, max: 16 });
const run = async (label: string) => {
  const pool = authPool(db.authUrl, 16);
  const r = await interleaved(2, 16, 5, [
    [`${label}: SQL as app_user (RLS)`, (_c, i) => { const m = members[i % 1000]; return asUser(pool, m.userId, m.sessionId, SQL, [m.organizationId]).then(() => {}); }],
    [`${label}: SQL as owner, explicit WHERE`, async (_c, i) => { const m = members[i % 1000]; const c = await ownerPool.connect(); try { await c.query("begin"); await c.query("select set_config('jwt.claims.user_id', $1, true), set_config('jwt.claims.session_id', $2, true)", [m.userId, m.sessionId]); await c.query(SQL, [m.organizationId]); await c.query("commit"); } finally { c.release(); } }],
  ]);
  await pool.end();
  return r;
};
try {
  const before = await run("sql helper (as is)");
  await owner.query(`
    create or replace function app_public.current_user_organization_ids(min_role app_public.organization_role default 'member') returns uuid[]
      language plpgsql stable security definer parallel safe
      set search_path = pg_catalog, public
    as $f$
    declare v_user uuid := app_public.current_user_id(); v_key uuid; v_ids uuid[];
    begin
      if v_user is not null then
        select coalesce(array_agg(m.organization_id), '{}') into v_ids
        from app_public.organization_members m join app_public.organizations o on o.id = m.organization_id
        where m.user_id = v_user and m.role >= min_role and o.deleted_at is null;
        return v_ids;
      end if;
      v_key := app_hidden.current_api_key_id();
      if v_key is not null then
        select coalesce(array_agg(k.organization_id), '{}') into v_ids
        from app_public.api_keys k join app_public.organizations o on o.id = k.organization_id
        where k.id = v_key and k.revoked_at is null and (k.expires_at is null or k.expires_at > now())
          and k.role >= min_role and o.deleted_at is null;
        return v_ids;
      end if;
      return '{}'::uuid[];
    end;
    $f$`);
  const after = await run("plpgsql helper");
  printTable("RLS helper: SQL function (planned on every call) vs PL/pgSQL (plan cached per connection)", [...before, ...after]);
  console.log(`  RLS / explicit WHERE: sql helper ${(before[0].perSecond / before[1].perSecond).toFixed(3)}, plpgsql helper ${(after[0].perSecond / after[1].perSecond).toFixed(3)}`);
  const m = members[7];
  const plan = await asUser(authPool(db.authUrl, 1), m.userId, m.sessionId, `explain (analyze, buffers, costs off) ${SQL}`, [m.organizationId]);
  console.log(plan.map((r: any) => "    " + r["QUERY PLAN"]).join("\n"));
} finally {
  await owner.query(original);
  await owner.end();
  await ownerPool.end();
  await db.stop();
}
