// The path to Citus, kept open by the catalog (docs/scaling.md explains the path).
//
// On Citus, tenant tables are distributed by organization_id and a few small, widely read tables
// are reference tables (a full copy on every node). Citus then refuses, or cannot keep correct:
//   1. a primary key or unique constraint on a distributed table without organization_id
//      (uniqueness is enforced per shard only);
//   2. a foreign key between distributed tables that does not pair organization_id with
//      organization_id (rows of one tenant must sit on one node), and any foreign key from a
//      reference table to a distributed table;
//   3. a policy on a distributed table containing a subquery ("cannot create policy, policy
//      expression contains a subquery" — any SubLink, even `(select f())`);
//   4. a function called by a policy that reads a distributed table (it would run on a shard,
//      where the other tenants' rows are elsewhere). This one found that the policy helper reads
//      api_keys for API-key callers: api_keys is therefore a reference table.
// This test reads the catalog generically (every table, index, foreign key, policy and policy
// helper, whatever the policy form of the day) and fails on anything new of those four kinds.
// What stays for now is listed below, each with its reason and what changes on Citus; the same
// lists are in docs/scaling.md (a test checks that each entry is there).

import { readFileSync } from "node:fs";
import path from "node:path";
import { projectRoot } from "../../core/paths.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";

const SCHEMAS = ["app_public", "app_private", "app_hidden"];

// Tenant tables (they have organization_id) that become REFERENCE tables, not distributed ones.
const REFERENCE_TENANT_TABLES: Record<string, string> = {
  // The tenant root: every tenant table points at it, and membership (below) must too; one small
  // row per organization, written rarely.
  "app_public.organizations": "tenant root, small, referenced by reference tables",
  // Read by app_hidden.start_request() at the start of every request transaction (the caller's
  // organizations, before any organization id is known) and by current_user_organization_ids(): it must be
  // local on every node. Small (one row per seat), written rarely.
  "app_public.organization_members": "read at the start of every request, before an organization id is known",
  // Slugs are one namespace across all organizations, and a redirect is looked up by slug alone.
  "app_public.organization_slug_redirects": "global slug namespace, looked up without an organization",
  // Webhooks find the organization from a Stripe customer id: the lookup that routes everything else.
  "app_private.stripe_customers": "routes Stripe webhooks to an organization",
  // An API-key request's organization comes from its key: start_request() reads api_keys at the
  // start of every transaction such a caller runs, and the key is found by its secret's hash
  // before the organization is known. Small (a few keys per organization), written rarely.
  "app_public.api_keys": "read at the start of every API-key request, before its organization is known",
  "app_private.api_key_secrets": "an API key is verified before its organization is known",
  // A verified domain is one namespace across organizations; an SSO sign-in finds the organization
  // by the address's domain. start_request() reads a session's connection for an organization
  // that requires SSO. Both small, written rarely.
  "app_public.sso_domains": "a verified domain is one namespace across organizations",
  "app_public.sso_connections": "read by start_request for an organization that requires SSO",
};

// Unique indexes on distributed tables without organization_id. Each one blocks distribution
// until the change in its reason is made.
const GLOBAL_UNIQUE: Record<string, string> = {
  "app_public.subscriptions.subscriptions_stripe_subscription_id_key":
    "Stripe's id, looked up by webhooks: on Citus, unique (organization_id, stripe_subscription_id), the organization found through stripe_customers first",
  "app_public.subscriptions.subscriptions_stripe_customer_id_key":
    "one customer per organization: on Citus, enforced by app_private.stripe_customers (reference) instead",
  "app_public.invoices.invoices_stripe_invoice_id_key":
    "Stripe's id, the webhook upsert key: on Citus, unique (organization_id, stripe_invoice_id), organization from stripe_customers",
  "app_public.invoices.invoices_stripe_checkout_session_id_key":
    "Stripe's id, a checkout recorded once: on Citus, unique (organization_id, stripe_checkout_session_id)",
  "app_private.invitation_tokens.invitation_tokens_token_hash_key":
    "a token is accepted before its organization is known: on Citus, the token carries the organization id (or a reference lookup table maps hash to organization)",
  "app_private.invitation_tokens.invitation_tokens_mail_token_hash_key":
    "the emailed token, accepted before its organization is known: on Citus, as invitation_tokens_token_hash_key",
};

// Foreign keys that break rule 2, with their reason.
const FOREIGN_KEYS: Record<string, string> = {};

// Subquery forms allowed in policies on distributed tables, as they print in pg_get_expr, each
// with its reason: none. Tenant policies compare with the caller's organizations in a transaction
// setting (`organization_id = any (current_setting('tenantbase.organization_ids')::uuid[])`,
// made by app_hidden.start_request(); docs/benchmarks.md, "Policy form"), a form Citus accepts.
const POLICY_SUBQUERIES: { form: RegExp; reason: string }[] = [];

// Functions called by policies that read a distributed table: none may.
const HELPERS_READING_DISTRIBUTED: Record<string, string> = {};

let db: TestDatabase;
let distributed: Set<string>;
let reference: Set<string>;

async function classify(): Promise<void> {
  const { rows } = await db.owner.query(
    `select n.nspname || '.' || c.relname as name,
            exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'organization_id' and not a.attisdropped) as tenant
     from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = any ($1) and c.relkind in ('r', 'p')`,
    [SCHEMAS],
  );
  distributed = new Set(rows.filter((r) => r.tenant && !(r.name in REFERENCE_TENANT_TABLES)).map((r) => r.name));
  reference = new Set(rows.filter((r) => !distributed.has(r.name)).map((r) => r.name));
}

beforeAll(async () => {
  db = await createTestDatabase();
  await classify();
});
afterAll(() => db?.drop());

test("the classification covers the schema: tenant tables are distributed unless listed as reference", () => {
  expect(distributed.size).toBeGreaterThan(10);
  for (const name of Object.keys(REFERENCE_TENANT_TABLES)) expect(reference.has(name)).toBe(true);
});

async function uniqueOffenders(): Promise<string[]> {
  const { rows } = await db.owner.query(
    `select n.nspname || '.' || c.relname as table_name, i.relname as index_name,
            exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'organization_id' and a.attnum = any (x.indkey)) as has_org
     from pg_index x
     join pg_class i on i.oid = x.indexrelid
     join pg_class c on c.oid = x.indrelid
     join pg_namespace n on n.oid = c.relnamespace
     where x.indisunique and n.nspname = any ($1)`,
    [SCHEMAS],
  );
  return rows
    .filter((r) => distributed.has(r.table_name) && !r.has_org && !(`${r.table_name}.${r.index_name}` in GLOBAL_UNIQUE))
    .map((r) => `${r.table_name}.${r.index_name}`);
}

test("1. unique indexes on distributed tables include organization_id", async () => {
  expect(await uniqueOffenders()).toEqual([]);
});

async function foreignKeyOffenders(): Promise<string[]> {
  const { rows } = await db.owner.query(
    `select con.conname,
            sn.nspname || '.' || s.relname as from_table, tn.nspname || '.' || t.relname as to_table,
            (select array_agg(a.attname::text order by k.ord) from unnest(con.conkey) with ordinality k(attnum, ord)
               join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum) as from_cols,
            (select array_agg(a.attname::text order by k.ord) from unnest(con.confkey) with ordinality k(attnum, ord)
               join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.attnum) as to_cols
     from pg_constraint con
     join pg_class s on s.oid = con.conrelid join pg_namespace sn on sn.oid = s.relnamespace
     join pg_class t on t.oid = con.confrelid join pg_namespace tn on tn.oid = t.relnamespace
     where con.contype = 'f' and sn.nspname = any ($1)`,
    [SCHEMAS],
  );
  expect(rows.length).toBeGreaterThan(10);
  const offenders: string[] = [];
  for (const fk of rows) {
    const key = `${fk.from_table}.${fk.conname}`;
    if (key in FOREIGN_KEYS) continue;
    if (distributed.has(fk.from_table) && distributed.has(fk.to_table)) {
      const i = fk.from_cols.indexOf("organization_id");
      if (i < 0 || fk.to_cols[i] !== "organization_id") offenders.push(`${key}: (${fk.from_cols}) → ${fk.to_table} (${fk.to_cols}) does not pair organization_id`);
    } else if (reference.has(fk.from_table) && distributed.has(fk.to_table)) {
      offenders.push(`${key}: reference table → distributed ${fk.to_table}`);
    }
  }
  return offenders;
}

test("2. foreign keys: distributed → distributed pair organization_id; none from reference → distributed", async () => {
  expect(await foreignKeyOffenders()).toEqual([]);
});

interface Policy {
  table_name: string;
  polname: string;
  expr: string;
}

async function policiesOnDistributedTables(): Promise<Policy[]> {
  const { rows } = await db.owner.query(
    `select n.nspname || '.' || c.relname as table_name, p.polname,
            concat_ws(' WITH CHECK ', pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)) as expr
     from pg_policy p join pg_class c on c.oid = p.polrelid join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = any ($1)`,
    [SCHEMAS],
  );
  return rows.filter((r) => distributed.has(r.table_name));
}

/** Every parenthesised "( SELECT … )" in a deparsed expression, balanced. */
function subqueries(expr: string): string[] {
  const found: string[] = [];
  for (let start = expr.indexOf("( SELECT"); start >= 0; start = expr.indexOf("( SELECT", start + 1)) {
    let depth = 0;
    for (let i = start; i < expr.length; i++) {
      if (expr[i] === "(") depth++;
      else if (expr[i] === ")" && --depth === 0) {
        found.push(expr.slice(start, i + 1));
        break;
      }
    }
  }
  return found;
}

async function policyOffenders(): Promise<string[]> {
  const policies = await policiesOnDistributedTables();
  expect(policies.length).toBeGreaterThan(10);
  const offenders: string[] = [];
  for (const policy of policies) {
    // EXISTS (SELECT …), IN (SELECT …) and ARRAY(SELECT …) deparse with "( SELECT" or "(SELECT" too.
    const all = subqueries(policy.expr);
    if (/\bSELECT\b/i.test(policy.expr.replace(/\( SELECT/g, "")) ) offenders.push(`${policy.table_name}.${policy.polname}: ${policy.expr}`);
    for (const sub of all) {
      if (!POLICY_SUBQUERIES.some((allowed) => allowed.form.test(sub))) offenders.push(`${policy.table_name}.${policy.polname}: ${sub}`);
    }
  }
  return offenders;
}

test("3. policies on distributed tables contain no subquery except the listed forms", async () => {
  expect(await policyOffenders()).toEqual([]);
});

async function helperOffenders(): Promise<string[]> {
  // Functions a policy depends on (PostgreSQL records them in pg_depend), then every function
  // their bodies name, transitively.
  const { rows: roots } = await db.owner.query(
    `select distinct pn.nspname || '.' || pr.proname as name
     from pg_depend d
     join pg_policy p on d.classid = 'pg_policy'::regclass and d.objid = p.oid
     join pg_proc pr on d.refclassid = 'pg_proc'::regclass and pr.oid = d.refobjid
     join pg_namespace pn on pn.oid = pr.pronamespace
     where pn.nspname = any ($1)`,
    [SCHEMAS],
  );
  expect(roots.length).toBeGreaterThan(0);
  const { rows: functions } = await db.owner.query(
    `select n.nspname || '.' || p.proname as name, p.prosrc
     from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = any ($1)`,
    [SCHEMAS],
  );
  const sources = new Map<string, string[]>();
  // Comments name functions too ("start_request() has read them"): only code counts.
  const code = (source: string) => source.replace(/--[^\n]*/g, "").replace(/\/\*[\s\S]*?\*\//g, "");
  for (const f of functions) sources.set(f.name, [...(sources.get(f.name) ?? []), code(f.prosrc)]);
  const seen = new Set<string>();
  const queue: { name: string; via: string[] }[] = roots.map((r) => ({ name: r.name, via: [r.name] }));
  const offenders: string[] = [];
  const qualified = new RegExp(`\\b(${SCHEMAS.join("|")})\\.([a-z_][a-z0-9_]*)\\b`, "g");
  while (queue.length) {
    const { name, via } = queue.shift()!;
    if (seen.has(name)) continue;
    seen.add(name);
    for (const source of sources.get(name) ?? []) {
      for (const [, schema, object] of source.matchAll(qualified)) {
        const target = `${schema}.${object}`;
        if (distributed.has(target) && !(name in HELPERS_READING_DISTRIBUTED)) offenders.push(`${via.join(" → ")} reads ${target}`);
        if (sources.has(target) && !seen.has(target)) queue.push({ name: target, via: [...via, target] });
      }
    }
  }
  expect([...seen].length).toBeGreaterThanOrEqual(roots.length);
  return [...new Set(offenders)];
}

test("4. no function called by a policy reads a distributed table (following the functions it calls)", async () => {
  expect(await helperOffenders()).toEqual([]);
});

test("docs/scaling.md lists every exception of this test", () => {
  const doc = readFileSync(path.join(projectRoot, "docs", "scaling.md"), "utf8");
  const names = [
    ...Object.keys(REFERENCE_TENANT_TABLES),
    ...Object.keys(GLOBAL_UNIQUE).map((key) => key.split(".").slice(-1)[0]),
    ...Object.keys(FOREIGN_KEYS),
    ...Object.keys(HELPERS_READING_DISTRIBUTED),
  ];
  const missing = names.filter((name) => !doc.includes(name.replace(/^app_(public|private)\./, "")));
  expect(missing).toEqual([]);
});

test("the lint catches each kind of offence (a tenant table built to break all four rules)", async () => {
  await db.owner.query(`
    create table app_public.lint_widgets (
      id uuid primary key,                                  -- 1: unique without organization_id
      organization_id uuid not null references app_public.organizations,
      subscription text references app_public.subscriptions (stripe_subscription_id),  -- 2: no organization_id pair
      created_at timestamptz not null default now(), updated_at timestamptz not null default now(), created_by uuid
    );
    create function app_hidden.lint_widget_orgs() returns uuid[] language sql stable
      as 'select array_agg(g.organization_id) from app_public.generations g';  -- 4: reads a distributed table
    create policy select_member on app_public.lint_widgets for select using (
      exists (select 1 from app_public.projects p where p.organization_id = lint_widgets.organization_id)      -- 3: a subquery
      or organization_id = any (app_hidden.lint_widget_orgs()));
  `);
  try {
    await classify();
    expect(await uniqueOffenders()).toEqual(["app_public.lint_widgets.lint_widgets_pkey"]);
    expect(await foreignKeyOffenders()).toEqual([expect.stringMatching(/^app_public\.lint_widgets\.lint_widgets_subscription_fkey: /)]);
    expect((await policyOffenders()).join("\n")).toMatch(/app_public\.lint_widgets\.select_member: \( SELECT 1\s+FROM app_public\.projects/);
    expect(await helperOffenders()).toEqual(["app_hidden.lint_widget_orgs reads app_public.generations"]);
  } finally {
    await db.owner.query("drop table app_public.lint_widgets; drop function app_hidden.lint_widget_orgs()");
    await classify();
  }
});
