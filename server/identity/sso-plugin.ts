// setSsoConnection and verifySsoDomain (docs/organization-sso.md): the two organization-SSO
// mutations that need the server. Who may do what is decided in SQL, as the caller
// (db/functions/040-organization-sso: NOT_FOUND / FORBIDDEN / … through app_hidden.raise_error);
// the server adds only what SQL cannot do:
//   - setSsoConnection encrypts the client secret (server/identity/sso-secrets.ts) before it
//     reaches SQL; the secret is never logged, never in an error, never given back;
//   - verifySsoDomain asks DNS for the domain's TXT records (at _tenantbase.<domain> and at the
//     domain) with a resolver the app's options may replace (tests), outside any transaction,
//     and hands what it found to app_hidden.confirm_sso_domain.

import type pg from "pg";
import { Resolver } from "node:dns/promises";
import { extendSchema } from "postgraphile/utils";
import { context, get, sideEffect } from "postgraphile/grafast";
import { BUSINESS_ERROR_SQLSTATE } from "../errors.ts";
import { withSettings } from "../../db/transaction.ts";
import { encryptSsoSecret } from "./sso-secrets.ts";

/** Shaped like a business error raised in SQL, so server/errors.ts passes its code through. */
class SsoError extends Error {
  readonly code = BUSINESS_ERROR_SQLSTATE;
  readonly detail: string;
  constructor(code: string, message: string) {
    super(message);
    this.detail = code;
  }
}

/** TXT records of a name, each as its strings (node:dns/promises Resolver#resolveTxt's shape). */
export type ResolveTxt = (hostname: string) => Promise<string[][]>;

export interface SsoPluginOptions {
  /** app_authenticator connections; each SQL step runs as the caller (their pgSettings). */
  pool: pg.Pool;
  /** SSO_SECRET_KEY; null: setSsoConnection answers SSO_NOT_CONFIGURED. */
  secretKey: Buffer | null;
  /** Default: a node:dns Resolver (5 s, 2 tries). */
  resolveTxt?: ResolveTxt;
}

type PgSettings = Record<string, string | undefined>;

const MAX_RECORDS = 50;
const MAX_RECORD_LENGTH = 1000;

export function defaultResolveTxt(): ResolveTxt {
  const resolver = new Resolver({ timeout: 5000, tries: 2 });
  return (hostname) => resolver.resolveTxt(hostname);
}

/** The TXT records at both places, joined per record, bounded; a name with none gives none. */
async function txtRecords(resolveTxt: ResolveTxt, domain: string): Promise<string[]> {
  const found: string[] = [];
  for (const name of [`_tenantbase.${domain}`, domain]) {
    let records: string[][] = [];
    try {
      records = await resolveTxt(name);
    } catch {
      records = []; // NXDOMAIN, no TXT, timeout: nothing found there
    }
    for (const record of records.slice(0, MAX_RECORDS)) {
      const value = (Array.isArray(record) ? record : [String(record)]).join("");
      if (value.length <= MAX_RECORD_LENGTH) found.push(value);
    }
  }
  return found.slice(0, MAX_RECORDS);
}

export async function verifySsoDomain(pool: pg.Pool, resolveTxt: ResolveTxt, pgSettings: PgSettings, id: string) {
  const domain = await withSettings(pool, pgSettings ?? {}, async (client) => {
    const { rows } = await client.query("select d.domain from app_public.sso_domains d where d.id = $1", [id]);
    return (rows[0]?.domain as string | undefined) ?? null;
  });
  // members cannot read domains (admins only): the same answer as an unknown id
  if (domain === null) throw new SsoError("NOT_FOUND", "No such domain.");
  const records = await txtRecords(resolveTxt, domain);
  return withSettings(pool, pgSettings ?? {}, async (client) => {
    const { rows } = await client.query("select (d).id, (d).domain, (d).verified_at from app_hidden.confirm_sso_domain($1, $2) d", [id, records]);
    return { id: rows[0].id as string, domain: rows[0].domain as string, verifiedAt: (rows[0].verified_at as Date).toISOString() };
  });
}

export interface SsoConnectionInput {
  organizationId: string;
  issuer: string;
  clientId: string;
  clientSecret: string;
}

export async function setSsoConnection(pool: pg.Pool, secretKey: Buffer | null, pgSettings: PgSettings, input: SsoConnectionInput) {
  if (typeof input.clientSecret !== "string" || input.clientSecret.length < 1 || input.clientSecret.length > 1000) {
    throw new SsoError("INVALID_INPUT", "The client secret must be 1 to 1,000 characters.");
  }
  if (secretKey === null) throw new SsoError("SSO_NOT_CONFIGURED", "Organization SSO is not configured on this server (SSO_SECRET_KEY).");
  const encrypted = encryptSsoSecret(secretKey, input.organizationId, input.clientSecret);
  return withSettings(pool, pgSettings ?? {}, async (client) => {
    const { rows } = await client.query(
      "select (c).id, (c).issuer, (c).client_id from app_hidden.set_sso_connection($1, $2, $3, $4) c",
      [input.organizationId, input.issuer, input.clientId, encrypted],
    );
    return { ssoProviderId: rows[0].id as string, issuer: rows[0].issuer as string, clientId: rows[0].client_id as string };
  });
}

export function makeSsoPlugin(options: SsoPluginOptions): GraphileConfig.Plugin {
  const { pool, secretKey } = options;
  const resolveTxt = options.resolveTxt ?? defaultResolveTxt();
  return extendSchema(() => ({
    typeDefs: /* GraphQL */ `
      input SetSsoConnectionInput {
        clientMutationId: String
        organizationId: UUID!
        "The identity provider's issuer URL (its /.well-known/openid-configuration is read from there)."
        issuer: String!
        clientId: String!
        "Kept encrypted; never readable back."
        clientSecret: String!
      }
      type SetSsoConnectionPayload {
        clientMutationId: String
        ssoProviderId: UUID!
        issuer: String!
        clientId: String!
      }
      input VerifySsoDomainInput {
        clientMutationId: String
        id: UUID!
      }
      type VerifySsoDomainPayload {
        clientMutationId: String
        id: UUID!
        domain: String!
        verifiedAt: Datetime!
      }
      extend type Mutation {
        "Creates or replaces the organization's OpenID Connect connection for SSO (admins and owners)."
        setSsoConnection(input: SetSsoConnectionInput!): SetSsoConnectionPayload
        "Checks the domain's DNS TXT record (at _tenantbase.<domain> or the domain) and marks it verified (admins and owners)."
        verifySsoDomain(input: VerifySsoDomainInput!): VerifySsoDomainPayload
      }
    `,
    objects: {
      Mutation: {
        plans: {
          setSsoConnection(_$root, fieldArgs) {
            const $input = fieldArgs.getRaw("input");
            const $pgSettings = context().get("pgSettings");
            return sideEffect([$input, $pgSettings], async ([input, pgSettings]) => {
              const result = await setSsoConnection(pool, secretKey, pgSettings as PgSettings, input as SsoConnectionInput);
              return { ...result, clientMutationId: (input as { clientMutationId?: string }).clientMutationId ?? null };
            });
          },
          verifySsoDomain(_$root, fieldArgs) {
            const $input = fieldArgs.getRaw("input");
            const $pgSettings = context().get("pgSettings");
            return sideEffect([$input, $pgSettings], async ([input, pgSettings]) => {
              const result = await verifySsoDomain(pool, resolveTxt, pgSettings as PgSettings, (input as { id: string }).id);
              return { ...result, clientMutationId: (input as { clientMutationId?: string }).clientMutationId ?? null };
            });
          },
        },
      },
      SetSsoConnectionPayload: {
        plans: {
          clientMutationId: ($p: any) => get($p, "clientMutationId"),
          ssoProviderId: ($p: any) => get($p, "ssoProviderId"),
          issuer: ($p: any) => get($p, "issuer"),
          clientId: ($p: any) => get($p, "clientId"),
        },
      },
      VerifySsoDomainPayload: {
        plans: {
          clientMutationId: ($p: any) => get($p, "clientMutationId"),
          id: ($p: any) => get($p, "id"),
          domain: ($p: any) => get($p, "domain"),
          verifiedAt: ($p: any) => get($p, "verifiedAt"),
        },
      },
    },
  }));
}
