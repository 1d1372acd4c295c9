// The MFA mutations that need the TOTP key: enrollTotp, confirmTotp, verifyMfa and stepUpMfa.
//
// TOTP secrets are encrypted here (AES-256-GCM, key from MFA_SECRET_KEY) and codes are checked
// here (otplib, RFC 6238: 30-second steps, 6 digits, one step either side); the database never
// holds a secret in clear and never sees the key. What must hold across processes is in SQL
// (db/functions/050-mfa), called as the caller in short transactions of their own:
//   1. app_hidden.mfa_code_attempt / totp_confirmation_attempt count the attempt (per account
//      and per client address) and commit, whatever the code turns out to be;
//   2. the code is checked here, against the factor's last accepted time step (no replay);
//   3. app_hidden.accept_mfa_code / confirm_totp_factor record the step (or the recovery code)
//      as used and take the challenge, each once, even when two requests race.
// verifyMfa signs its session token the way PostGraphile signs app_public.jwt_token.

import type pg from "pg";
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from "node:crypto";
import jwt from "jsonwebtoken";
import { generateSecret, generateURI, verify } from "otplib";
import { extendSchema } from "postgraphile/utils";
import { context, get, sideEffect } from "postgraphile/grafast";
import { BUSINESS_ERROR_SQLSTATE } from "../errors.ts";
import { withSettings } from "../../db/transaction.ts";
import { mfaConfig, type MfaConfig } from "../../core/config.ts";
import type { JwtSettings } from "../auth.ts";

/** Shaped like a business error raised in SQL, so server/errors.ts passes its code through. */
export class MfaError extends Error {
  readonly code = BUSINESS_ERROR_SQLSTATE;
  readonly detail: string;
  constructor(code: string, message: string) {
    super(message);
    this.detail = code;
  }
}

export interface MfaPluginOptions {
  /** app_authenticator connections; each SQL step runs as the caller (their pgSettings). */
  pool: pg.Pool;
  jwt: JwtSettings;
  /** Default: mfaConfig() from the environment. */
  config?: MfaConfig;
}

type PgSettings = Record<string, string | undefined>;

/** The 32-byte AES key: SHA-256 of MFA_SECRET_KEY, or (development, tests) derived from the JWT secret. */
export function mfaKey(config: MfaConfig, jwtSecret: string): Buffer {
  if (config.secretKey !== null) return createHash("sha256").update(config.secretKey).digest();
  return Buffer.from(hkdfSync("sha256", jwtSecret, "tenantbase", "mfa totp secrets", 32));
}

export function encryptSecret(key: Buffer, secret: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  const body = Buffer.concat([cipher.update(secret, "utf8"), cipher.final()]);
  return `v1.${Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64url")}`;
}

export function decryptSecret(key: Buffer, stored: string): string {
  if (!stored.startsWith("v1.")) throw new Error("unknown TOTP secret format");
  const raw = Buffer.from(stored.slice(3), "base64url");
  const decipher = createDecipheriv("aes-256-gcm", key, raw.subarray(0, 12));
  decipher.setAuthTag(raw.subarray(12, 28));
  return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString("utf8");
}

const TOTP_CODE = /^\d{6}$/;

/** The time step the code matches (±1 step, after lastStep), or null. `now`: seconds since the epoch. */
export async function matchTotp(secret: string, code: string, lastStep: number | null, now: number): Promise<number | null> {
  if (!TOTP_CODE.test(code)) return null;
  const result = await verify({
    strategy: "totp",
    secret,
    token: code,
    epoch: now,
    epochTolerance: 30,
    ...(lastStep !== null ? { afterTimeStep: lastStep } : {}),
  });
  return result.valid && "timeStep" in result ? result.timeStep : null;
}

function invalidCode(): never {
  throw new MfaError("MFA_CODE_INVALID", "That code is not valid.");
}

/** The challenge id inside an MFA challenge token (signed by us, role mfa_challenge, not expired). */
export function challengeIdOf(token: string, settings: JwtSettings): string {
  try {
    const claims = jwt.verify(token, settings.secret, { algorithms: ["HS256"], audience: settings.audience, issuer: settings.issuer });
    if (typeof claims === "object" && claims.role === "mfa_challenge" && typeof claims.session_id === "string"
        && /^[0-9a-f-]{36}$/i.test(claims.session_id)) {
      return claims.session_id;
    }
  } catch {
    // fall through
  }
  throw new MfaError("MFA_CHALLENGE_INVALID", "This sign-in step has expired or was already used; sign in again.");
}

interface TotpCandidate {
  factor_id: string;
  secret_encrypted: string;
  last_step: string | null;
}

/**
 * verifyMfa (challenge given) or stepUpMfa (signed-in caller): counts the attempt, checks the code
 * against the TOTP factors, else takes it as a recovery code; returns the SQL jwt_token row.
 */
async function acceptCode(
  pool: pg.Pool,
  key: Buffer,
  pgSettings: PgSettings,
  challengeId: string | null,
  code: string,
  now: () => number,
): Promise<{ role: string | null; sub: string | null; session_id: string | null; exp: string | null }> {
  if (typeof code !== "string" || code.length > 64) invalidCode();
  const candidates = await withSettings(pool, pgSettings, async (client) =>
    (await client.query<TotpCandidate>("select * from app_hidden.mfa_code_attempt($1)", [challengeId])).rows,
  );
  const trimmed = code.replace(/\s/g, "");
  let match: { factorId: string; step: number } | null = null;
  if (TOTP_CODE.test(trimmed)) {
    for (const candidate of candidates) {
      const secret = decryptSecret(key, candidate.secret_encrypted);
      const step = await matchTotp(secret, trimmed, candidate.last_step === null ? null : Number(candidate.last_step), now());
      if (step !== null) {
        match = { factorId: candidate.factor_id, step };
        break;
      }
    }
    if (match === null) invalidCode();
  }
  return withSettings(pool, pgSettings, async (client) => {
    const { rows } = await client.query("select (t).* from app_hidden.accept_mfa_code($1, $2, $3, $4) t", [
      challengeId,
      match?.factorId ?? null,
      match?.step ?? null,
      match === null ? code : null,
    ]);
    return rows[0];
  });
}

export interface MfaPluginTestHooks {
  /** Seconds since the epoch for TOTP checks (tests pin it); default the clock. */
  now?: () => number;
}

export function makeMfaPlugin(options: MfaPluginOptions, hooks: MfaPluginTestHooks = {}): GraphileConfig.Plugin {
  const config = options.config ?? mfaConfig();
  const key = mfaKey(config, options.jwt.secret);
  const { pool } = options;
  const now = hooks.now ?? (() => Math.floor(Date.now() / 1000));
  const withMutationId = <T extends object>(input: unknown, result: T) => ({
    ...result,
    clientMutationId: (input as { clientMutationId?: string }).clientMutationId ?? null,
  });

  return extendSchema(() => ({
    typeDefs: /* GraphQL */ `
      input EnrollTotpInput {
        clientMutationId: String
        "What to call it in myMfaFactors (default: Authenticator app)."
        name: String
      }
      type EnrollTotpPayload {
        clientMutationId: String
        "Give it to confirmTotp with the first code."
        factorId: UUID!
        "The base32 secret, shown this once (for typing into an app)."
        secret: String!
        "otpauth:// URI for a QR code, shown this once."
        uri: String!
      }
      input ConfirmTotpInput {
        clientMutationId: String
        factorId: UUID!
        "A current 6-digit code from the app."
        code: String!
      }
      type ConfirmTotpPayload {
        clientMutationId: String
        "With the account's first factor: its ten recovery codes, shown this once; otherwise empty."
        recoveryCodes: [String!]!
      }
      input VerifyMfaInput {
        clientMutationId: String
        "The MFA challenge authenticate or exchangeSignInCode answered."
        challenge: String!
        "A 6-digit TOTP code or a recovery code."
        code: String!
      }
      type VerifyMfaPayload {
        clientMutationId: String
        "The session token (aal2)."
        jwtToken: String!
      }
      input StepUpMfaInput {
        clientMutationId: String
        "A 6-digit TOTP code or a recovery code."
        code: String!
      }
      type StepUpMfaPayload {
        clientMutationId: String
        success: Boolean!
      }
      extend type Mutation {
        "Starts adding a TOTP app: the secret and otpauth URI, shown once. Needs a second factor in the last 15 minutes when you already have one."
        enrollTotp(input: EnrollTotpInput!): EnrollTotpPayload
        "Confirms a TOTP app with its first code; this session becomes aal2."
        confirmTotp(input: ConfirmTotpInput!): ConfirmTotpPayload
        "Second step of signing in: the MFA challenge and a TOTP or recovery code give the session token."
        verifyMfa(input: VerifyMfaInput!): VerifyMfaPayload
        "Gives a second factor in the current session (aal2 for the next 15 minutes of step-up)."
        stepUpMfa(input: StepUpMfaInput!): StepUpMfaPayload
      }
    `,
    objects: {
      Mutation: {
        plans: {
          enrollTotp(_$root, fieldArgs) {
            const $input = fieldArgs.getRaw("input");
            const $pgSettings = context().get("pgSettings");
            return sideEffect([$input, $pgSettings], async ([input, pgSettings]) => {
              const secret = generateSecret();
              const { factor_id: factorId, email } = await withSettings(pool, (pgSettings ?? {}) as PgSettings, async (client) =>
                (await client.query("select * from app_hidden.add_totp_factor($1, $2)", [encryptSecret(key, secret), (input as { name?: string }).name ?? null])).rows[0],
              );
              const uri = generateURI({ issuer: config.totpIssuer, label: email, secret });
              return withMutationId(input, { factorId, secret, uri });
            });
          },
          confirmTotp(_$root, fieldArgs) {
            const $input = fieldArgs.getRaw("input");
            const $pgSettings = context().get("pgSettings");
            return sideEffect([$input, $pgSettings], async ([input, pgSettings]) => {
              const { factorId, code } = input as { factorId: string; code: string };
              const settings = (pgSettings ?? {}) as PgSettings;
              const stored = await withSettings(pool, settings, async (client) =>
                (await client.query("select app_hidden.totp_confirmation_attempt($1) as s", [factorId])).rows[0].s as string,
              );
              const step = await matchTotp(decryptSecret(key, stored), String(code).replace(/\s/g, ""), null, now());
              if (step === null) invalidCode();
              const recoveryCodes = await withSettings(pool, settings, async (client) =>
                (await client.query("select app_hidden.confirm_totp_factor($1, $2) as c", [factorId, step])).rows.map((r) => r.c as string),
              );
              return withMutationId(input, { recoveryCodes });
            });
          },
          verifyMfa(_$root, fieldArgs) {
            const $input = fieldArgs.getRaw("input");
            const $pgSettings = context().get("pgSettings");
            return sideEffect([$input, $pgSettings], async ([input, pgSettings]) => {
              const { challenge, code } = input as { challenge: string; code: string };
              const challengeId = challengeIdOf(String(challenge), options.jwt);
              const token = await acceptCode(pool, key, (pgSettings ?? {}) as PgSettings, challengeId, code, now);
              const jwtToken = jwt.sign(
                { role: token.role, sub: token.sub, session_id: token.session_id, exp: Number(token.exp) },
                options.jwt.secret,
                { algorithm: "HS256", audience: options.jwt.audience, issuer: options.jwt.issuer },
              );
              return withMutationId(input, { jwtToken });
            });
          },
          stepUpMfa(_$root, fieldArgs) {
            const $input = fieldArgs.getRaw("input");
            const $pgSettings = context().get("pgSettings");
            return sideEffect([$input, $pgSettings], async ([input, pgSettings]) => {
              await acceptCode(pool, key, (pgSettings ?? {}) as PgSettings, null, (input as { code: string }).code, now);
              return withMutationId(input, { success: true });
            });
          },
        },
      },
      EnrollTotpPayload: {
        plans: {
          clientMutationId: ($p: any) => get($p, "clientMutationId"),
          factorId: ($p: any) => get($p, "factorId"),
          secret: ($p: any) => get($p, "secret"),
          uri: ($p: any) => get($p, "uri"),
        },
      },
      ConfirmTotpPayload: {
        plans: {
          clientMutationId: ($p: any) => get($p, "clientMutationId"),
          recoveryCodes: ($p: any) => get($p, "recoveryCodes"),
        },
      },
      VerifyMfaPayload: {
        plans: {
          clientMutationId: ($p: any) => get($p, "clientMutationId"),
          jwtToken: ($p: any) => get($p, "jwtToken"),
        },
      },
      StepUpMfaPayload: {
        plans: {
          clientMutationId: ($p: any) => get($p, "clientMutationId"),
          success: ($p: any) => get($p, "success"),
        },
      },
    },
  }));
}
