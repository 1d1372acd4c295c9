// `npm run credits:grant -- --org <slug|id> --amount 500 [--expires 2027-01-01] [--key <key>]`:
// adds credits to an organization through the product's own app_private.grant_credits (a ledger
// entry with source `manual`, a grant that expires when asked), on the database `npm start` uses
// (embedded or configured). --key makes a repeat safe: the same key returns the first entry.

import { parseArgs } from "node:util";
import { randomUUID } from "node:crypto";
import pg from "pg";
import { loadConfig, ConfigError } from "../core/config.ts";
import { openOperatorDatabase } from "./operator-database.ts";

export interface GrantRequest {
  org: string;
  amount: string;
  expires?: string | null;
  key?: string | null;
}

export interface GrantResult {
  organizationId: string;
  slug: string;
  ledgerEntryId: string;
  amount: string;
  expiresAt: string | null;
  available: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Checks the arguments before anything touches the database; throws ConfigError with one line. */
export function parseGrantArgs(argv: string[]): GrantRequest {
  const { values } = parseArgs({
    args: argv,
    options: { org: { type: "string" }, amount: { type: "string" }, expires: { type: "string" }, key: { type: "string" } },
    strict: true,
  });
  if (!values.org) throw new ConfigError("--org <slug or id> is required");
  if (!values.amount || !/^[1-9][0-9]{0,12}$/.test(values.amount)) {
    throw new ConfigError(`--amount must be a whole number of credits from 1 to 10^12, got ${JSON.stringify(values.amount ?? "")}`);
  }
  if (values.expires !== undefined && Number.isNaN(Date.parse(values.expires))) {
    throw new ConfigError(`--expires must be a date or timestamp such as 2027-01-01 or 2027-01-01T00:00:00Z, got ${JSON.stringify(values.expires)}`);
  }
  return { org: values.org, amount: values.amount, expires: values.expires ?? null, key: values.key ?? null };
}

/** Grants as the owner role: finds the organization by id or slug, then one ledger entry. */
export async function grantCredits(ownerUrl: string, request: GrantRequest): Promise<GrantResult> {
  const client = new pg.Client({ connectionString: ownerUrl });
  await client.connect();
  try {
    const found = await client.query<{ id: string; slug: string }>(
      `select id, slug from app_public.organizations where ${UUID.test(request.org) ? "id = $1::uuid" : "slug = $1"} and deleted_at is null`,
      [request.org],
    );
    if (found.rows.length === 0) throw new ConfigError(`no organization with id or slug ${JSON.stringify(request.org)}`);
    const { id, slug } = found.rows[0];
    // A system key (its own column: no client key can name it), prefixed apart from the rest.
    const key = `operator:${request.key ?? randomUUID()}`;
    const { rows } = await client.query(
      "select id, amount::text, grant_id from app_private.grant_credits($1, $2::bigint, 'manual', $3::timestamptz, $4)",
      [id, request.amount, request.expires ?? null, key],
    );
    // Read after the grant's statement: a statement sees the snapshot taken when it began.
    const after = await client.query(
      `select a.available::text, g.expires_at
         from app_public.credit_accounts a
         left join app_public.credit_grants g on g.organization_id = a.organization_id and g.id = $2
        where a.organization_id = $1`,
      [id, rows[0].grant_id],
    );
    const entry = { ...rows[0], ...after.rows[0] };
    return {
      organizationId: id,
      slug,
      ledgerEntryId: entry.id,
      amount: entry.amount,
      expiresAt: entry.expires_at ? new Date(entry.expires_at).toISOString() : null,
      available: entry.available,
    };
  } finally {
    await client.end();
  }
}

async function main() {
  const request = parseGrantArgs(process.argv.slice(2));
  const config = loadConfig();
  const database = await openOperatorDatabase(config, (line) => console.error(`[credits] ${line}`));
  try {
    const result = await grantCredits(database.ownerUrl, request);
    console.log(
      `granted ${result.amount} credits to ${result.slug} (${result.organizationId})` +
        `${result.expiresAt ? `, expiring ${result.expiresAt}` : ", never expiring"}; available now ${result.available}` +
        ` (ledger entry ${result.ledgerEntryId})`,
    );
  } finally {
    await database.stop();
  }
}

if (process.argv[1]?.endsWith("credits-grant.ts")) {
  main().catch((error) => {
    const code = (error as { code?: string; detail?: string }).code === "TB000" ? ` (${(error as { detail?: string }).detail})` : "";
    console.error(`[credits] ${error instanceof ConfigError ? "" : "failed: "}${(error as Error).message}${code}`);
    process.exit(1);
  });
}
