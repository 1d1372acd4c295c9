// `npm run db:seed`: demo data for development, made through the product's own SQL functions as
// the roles a client would use, on the login the server uses (app_authenticator: register as
// app_anonymous; create_organization, invite_member, accept_invitation, a project,
// start/complete/fail_generation as app_user with the user's claims; grant_credits as the owner): two users, an organization with both as members, a project,
// 500 credits and three generations. Prints how to sign in. Safe to run again: when the demo
// owner exists it prints the same details and changes nothing. Refused with NODE_ENV=production.

import pg from "pg";
import { loadConfig, ConfigError } from "../core/config.ts";
import { withSettings, type TransactionSettings } from "../db/transaction.ts";
import { ROLES } from "../db/roles.ts";
import { openOperatorDatabase } from "./operator-database.ts";

export const DEMO = {
  owner: { email: "demo-owner@example.com", name: "Dana Owner" },
  member: { email: "demo-member@example.com", name: "Milo Member" },
  password: "tenantbase-demo",
  organization: "Demo Studio",
  project: "Launch campaign",
  credits: 500,
};

export interface SeedResult {
  created: boolean;
  organizationId: string;
  slug: string;
  projectId: string;
  ownerUserId: string;
}

interface Session {
  sub: string;
  session_id: string;
}

const asUser = (session: Session): TransactionSettings => ({
  role: ROLES.user,
  "jwt.claims.user_id": session.sub,
  "jwt.claims.session_id": session.session_id,
});

async function register(pool: pg.Pool, who: { email: string; name: string }): Promise<Session> {
  return withSettings(pool, { role: ROLES.anonymous }, async (client) => {
    const { rows } = await client.query<Session>("select sub, session_id from app_public.register($1, $2, $3)", [who.email, DEMO.password, who.name]);
    return rows[0];
  });
}

async function existing(pool: pg.Pool): Promise<SeedResult | null> {
  const { rows } = await pool.query(
    `select u.id as user_id, o.id as organization_id, o.slug, p.id as project_id
       from app_public.users u
       left join app_public.organization_members m on m.user_id = u.id and m.role = 'owner'
       left join app_public.organizations o on o.id = m.organization_id and o.name = $2
       left join app_public.projects p on p.organization_id = o.id and p.name = $3
      where u.email = $1
      order by o.created_at nulls last
      limit 1`,
    [DEMO.owner.email, DEMO.organization, DEMO.project],
  );
  if (rows.length === 0) return null;
  const row = rows[0];
  return { created: false, organizationId: row.organization_id, slug: row.slug, projectId: row.project_id, ownerUserId: row.user_id };
}

/** Seeds the database: as the app roles through authUrl, credits as the owner through ownerUrl. */
export async function seed(ownerUrl: string, authUrl: string): Promise<SeedResult> {
  const owners = new pg.Pool({ connectionString: ownerUrl, max: 1 });
  const pool = new pg.Pool({ connectionString: authUrl, max: 2 });
  try {
    const already = await existing(owners);
    if (already) return already;

    const owner = await register(pool, DEMO.owner);
    const member = await register(pool, DEMO.member);
    // Demo addresses receive no mail: the operator vouches for them, as a verification link
    // would (invitations and API keys need a verified address, VERIFIED_EMAIL_REQUIRED_FOR).
    await owners.query("update app_public.users set email_verified_at = now() where id = any($1) and email_verified_at is null", [
      [owner.sub, member.sub],
    ]);
    const organization = await withSettings(pool, asUser(owner), async (client) => {
      const { rows } = await client.query("select id, slug from app_public.create_organization($1)", [DEMO.organization]);
      return rows[0] as { id: string; slug: string };
    });
    const token = await withSettings(pool, asUser(owner), async (client) => {
      const { rows } = await client.query("select (app_public.invite_member($1, $2, 'member')).invitation_token as token", [
        organization.id,
        DEMO.member.email,
      ]);
      return rows[0].token as string;
    });
    await withSettings(pool, asUser(member), (client) => client.query("select app_public.accept_invitation($1)", [token]));
    const projectId = await withSettings(pool, asUser(owner), async (client) => {
      const { rows } = await client.query("insert into app_public.projects (organization_id, name, description) values ($1, $2, $3) returning id", [
        organization.id,
        DEMO.project,
        "Seeded by npm run db:seed",
      ]);
      return rows[0].id as string;
    });
    await owners.query("select app_private.grant_credits($1, $2, 'manual', null, 'operator:seed')", [organization.id, DEMO.credits]);

    const generations = [
      { by: owner, prompt: "a lighthouse at dawn, watercolor", cost: 8, outcome: "complete" },
      { by: member, prompt: "a fluffy orange kitten astronaut", cost: 6, outcome: "complete" },
      { by: member, prompt: "a city skyline made of books", cost: 0, outcome: "fail" },
    ];
    for (const [index, generation] of generations.entries()) {
      await withSettings(pool, asUser(generation.by), async (client) => {
        const { rows } = await client.query(
          `select id from app_public.start_generation($1, $2, 'image', 'flux-1', $3::jsonb, 10, $4)`,
          [organization.id, projectId, JSON.stringify({ prompt: generation.prompt, size: "1024x1024" }), `seed-${index + 1}`],
        );
        const id = rows[0].id as string;
        if (generation.outcome === "complete") {
          await client.query("select app_public.complete_generation($1, $2, $3::jsonb)", [
            id,
            generation.cost,
            JSON.stringify({ url: `https://cdn.example/seed-${index + 1}.png` }),
          ]);
        } else {
          await client.query("select app_public.fail_generation($1, $2)", [id, "provider timeout (seeded)"]);
        }
      });
    }
    return { created: true, organizationId: organization.id, slug: organization.slug, projectId, ownerUserId: owner.sub };
  } finally {
    await Promise.all([pool.end(), owners.end()]);
  }
}

async function main() {
  const config = loadConfig();
  if (config.isProduction) throw new ConfigError("db:seed refuses to run with NODE_ENV=production");
  const database = await openOperatorDatabase(config, (line) => console.error(`[seed] ${line}`));
  try {
    const result = await seed(database.ownerUrl, database.authUrl);
    const url = `http://localhost:${config.port}`;
    console.log(
      [
        result.created ? "Seeded demo data:" : "Demo data already there (nothing changed):",
        `  organization  ${DEMO.organization}  slug ${result.slug}  id ${result.organizationId}`,
        `  project       ${DEMO.project}  id ${result.projectId}`,
        `  owner         ${DEMO.owner.email}`,
        `  member        ${DEMO.member.email}`,
        `  password      ${DEMO.password}  (both users)`,
        "",
        `Sign in: npm start, open ${url}/graphiql and run`,
        `  mutation { authenticate(input: {email: "${DEMO.owner.email}", password: "${DEMO.password}"}) { jwtToken } }`,
        'then put { "Authorization": "Bearer <jwtToken>" } in the headers pane and ask for',
        `  { organizationBySlug(slug: "${result.slug}") { name creditAccount { available } projects { nodes { name generations { nodes { status creditsCharged } } } } } }`,
      ].join("\n"),
    );
  } finally {
    await database.stop();
  }
}

if (process.argv[1]?.endsWith("db-seed.ts")) {
  main().catch((error) => {
    console.error(`[seed] ${error instanceof ConfigError ? "" : "failed: "}${(error as Error).message}`);
    process.exit(1);
  });
}
