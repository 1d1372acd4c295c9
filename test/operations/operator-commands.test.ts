// The operator commands run as a developer runs them (child processes, the database given the
// way `npm start` takes it) and do their work through the product's SQL functions:
// `credits:grant` adds a ledger entry and a grant, `db:seed` makes the demo data once.

import { execFile } from "node:child_process";
import { promisify } from "node:util";
import path from "node:path";
import { createTestDatabase, type TestDatabase } from "../helpers/db.ts";
import { createOrganization, createUser } from "../helpers/fixtures.ts";
import { projectRoot } from "../../core/paths.ts";
import { parseGrantArgs } from "../../scripts/credits-grant.ts";
import { DEMO } from "../../scripts/db-seed.ts";

const run = promisify(execFile);
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

async function command(script: string, args: string[] = []) {
  const env: Record<string, string> = { PATH: process.env.PATH ?? "", DATABASE_URL: db.ownerUrl, AUTH_DATABASE_URL: db.authUrl, LOG_LEVEL: "warn" };
  try {
    const { stdout, stderr } = await run(process.execPath, [path.join(projectRoot, "scripts", script), ...args], { env, cwd: projectRoot });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const balance = async (org: string) =>
  (await db.owner.query("select available::int from app_public.credit_accounts where organization_id = $1", [org])).rows[0].available as number;

test("credits:grant by slug and by id, with an expiry; the ledger and the account agree", async () => {
  const owner = await createUser(db);
  const org = await createOrganization(db, owner, "Granted Org");
  const before = await balance(org.id);

  const bySlug = await command("credits-grant.ts", ["--org", org.slug, "--amount", "500"]);
  expect(bySlug).toMatchObject({ code: 0 });
  expect(bySlug.stdout).toContain(`granted 500 credits to ${org.slug} (${org.id}), never expiring; available now ${before + 500}`);

  const byId = await command("credits-grant.ts", ["--org", org.id, "--amount", "25", "--expires", "2099-01-01T00:00:00Z", "--key", "promo-1"]);
  expect(byId.stdout).toContain("expiring 2099-01-01T00:00:00.000Z");
  // the same key again: the first entry, nothing added
  const again = await command("credits-grant.ts", ["--org", org.id, "--amount", "25", "--key", "promo-1", "--expires", "2099-01-01T00:00:00Z"]);
  expect(again.code).toBe(0);
  expect(await balance(org.id)).toBe(before + 525);

  const { rows } = await db.owner.query(
    "select kind, amount::int, source, system_key from app_public.credit_ledger where organization_id = $1 and source = 'manual' order by seq",
    [org.id],
  );
  expect(rows).toEqual([
    { kind: "grant", amount: 500, source: "manual", system_key: expect.stringMatching(/^operator:/) },
    { kind: "grant", amount: 25, source: "manual", system_key: "operator:promo-1" },
  ]);
  const grants = await db.owner.query("select expires_at from app_public.credit_grants where organization_id = $1 and expires_at is not null and expires_at > '2098-01-01'", [org.id]);
  expect(grants.rows).toHaveLength(1);
});

test("credits:grant refuses bad arguments with one line, before touching the database", async () => {
  expect(() => parseGrantArgs(["--org", "acme", "--amount", "12.5"])).toThrow('--amount must be a whole number of credits from 1 to 10^12, got "12.5"');
  expect(() => parseGrantArgs(["--org", "acme", "--amount=-5"])).toThrow('got "-5"');
  expect(() => parseGrantArgs(["--amount", "5"])).toThrow("--org <slug or id> is required");
  expect(() => parseGrantArgs(["--org", "acme", "--amount", "5", "--expires", "soon"])).toThrow("--expires must be a date");
  const unknown = await command("credits-grant.ts", ["--org", "no-such-org", "--amount", "5"]);
  expect(unknown.code).toBe(1);
  expect(unknown.stderr).toContain('no organization with id or slug "no-such-org"');
});

test("db:seed makes two users, an organization, a project, credits and generations, once", async () => {
  const first = await command("db-seed.ts");
  expect({ code: first.code, stderr: first.code ? first.stderr : "" }).toEqual({ code: 0, stderr: "" });
  expect(first.stdout).toContain("Seeded demo data:");
  expect(first.stdout).toContain(DEMO.owner.email);
  expect(first.stdout).toContain(`password      ${DEMO.password}`);

  const { rows } = await db.owner.query(
    `select o.id, o.slug,
            (select count(*)::int from app_public.organization_members m where m.organization_id = o.id) as members,
            (select count(*)::int from app_public.projects p where p.organization_id = o.id) as projects,
            (select available::int from app_public.credit_accounts a where a.organization_id = o.id) as available,
            (select array_agg(status::text order by status::text) from app_public.generations g where g.organization_id = o.id) as generations
       from app_public.organizations o where o.name = $1`,
    [DEMO.organization],
  );
  expect(rows).toHaveLength(1);
  // 100 free monthly credits + 500 granted − 8 − 6 spent (the failed one cost nothing)
  expect(rows[0]).toMatchObject({ members: 2, projects: 1, available: 586, generations: ["failed", "succeeded", "succeeded"] });

  // the seeded password signs in through the product's own function
  const signIn = await db.owner.query("select sub from app_public.authenticate($1, $2)", [DEMO.member.email, DEMO.password]);
  expect(signIn.rows[0].sub).toEqual(expect.any(String));

  const second = await command("db-seed.ts");
  expect(second.code).toBe(0);
  expect(second.stdout).toContain("Demo data already there (nothing changed):");
  expect(second.stdout).toContain(rows[0].slug);
  const count = await db.owner.query("select count(*)::int as n from app_public.organizations where name = $1", [DEMO.organization]);
  expect(count.rows[0].n).toBe(1);
});
