// Passkeys (WebAuthn) with @simplewebauthn/server: registration, a passkey as the second factor
// of a sign-in (answering an MFA challenge), and passwordless sign-in with a discoverable
// passkey. The relying party is APP_URL's host and the only accepted origin is APP_URL's.
// Challenges live in PostgreSQL (db/functions/050-mfa/passkeys.sql): each is taken once before
// its answer is verified, for five minutes, bound to its user (and MFA challenge); the signature
// counter and backup flags are kept, the counter only moving forward.

import type pg from "pg";
import { randomBytes } from "node:crypto";
import jwt from "jsonwebtoken";
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type RegistrationResponseJSON,
} from "@simplewebauthn/server";
import { extendSchema } from "postgraphile/utils";
import { context, get, sideEffect } from "postgraphile/grafast";
import { withSettings } from "../../db/transaction.ts";
import type { MfaConfig } from "../../core/config.ts";
import type { JwtSettings } from "../auth.ts";
import { challengeIdOf, MfaError } from "./plugin.ts";

type PgSettings = Record<string, string | undefined>;

const MAX_RESPONSE_BYTES = 16_384;

/** 32 random bytes, and the base64url text the browser will sign into clientDataJSON. */
function newChallenge(): { bytes: Uint8Array<ArrayBuffer>; text: string } {
  const bytes = new Uint8Array(randomBytes(32));
  return { bytes, text: Buffer.from(bytes).toString("base64url") };
}

function invalidPasskey(): never {
  throw new MfaError("MFA_CODE_INVALID", "That passkey is not valid here.");
}

function parseResponse<T>(json: string): T {
  if (typeof json !== "string" || json.length > MAX_RESPONSE_BYTES) invalidPasskey();
  try {
    const value = JSON.parse(json);
    if (typeof value !== "object" || value === null || typeof value.id !== "string") invalidPasskey();
    return value as T;
  } catch {
    invalidPasskey();
  }
}

export function makePasskeyPlugin(options: { pool: pg.Pool; jwt: JwtSettings; config: MfaConfig }): GraphileConfig.Plugin {
  const { pool, config } = options;
  const url = new URL(config.appUrl);
  const rpID = url.hostname;
  const origin = url.origin;
  const asCaller = <T>(pgSettings: unknown, fn: (client: pg.PoolClient) => Promise<T>) => withSettings(pool, (pgSettings ?? {}) as PgSettings, fn);
  const withMutationId = <T extends object>(input: unknown, result: T) => ({
    ...result,
    clientMutationId: (input as { clientMutationId?: string }).clientMutationId ?? null,
  });
  const sign = (token: { role: string; sub: string; session_id: string; exp: string }) =>
    jwt.sign({ role: token.role, sub: token.sub, session_id: token.session_id, exp: Number(token.exp) }, options.jwt.secret, {
      algorithm: "HS256",
      audience: options.jwt.audience,
      issuer: options.jwt.issuer,
    });

  async function startRegistration(pgSettings: unknown) {
    // the challenge is made first, and stored with the row before the options leave
    const challenge = newChallenge();
    return asCaller(pgSettings, async (client) => {
      const { rows } = await client.query("select * from app_hidden.start_passkey_challenge('registration', $1, $2, $3, null)", [challenge.text, rpID, origin]);
      const row = rows[0] as { challenge_id: string; user_id: string; email: string; credential_ids: string[] };
      const optionsJson = await generateRegistrationOptions({
        rpName: config.totpIssuer,
        rpID,
        userName: row.email,
        userID: new TextEncoder().encode(row.user_id),
        challenge: challenge.bytes,
        attestationType: "none",
        excludeCredentials: row.credential_ids.map((id) => ({ id })),
        authenticatorSelection: { residentKey: "required", userVerification: "required" },
      });
      return { challengeId: row.challenge_id, optionsJson: JSON.stringify(optionsJson) };
    });
  }

  async function finishRegistration(pgSettings: unknown, input: { challengeId: string; responseJson: string; name?: string | null }) {
    const response = parseResponse<RegistrationResponseJSON>(input.responseJson);
    const taken = await asCaller(pgSettings, async (client) =>
      (await client.query("select * from app_hidden.take_passkey_challenge($1, 'registration')", [input.challengeId])).rows[0],
    );
    let verification;
    try {
      verification = await verifyRegistrationResponse({
        response,
        expectedChallenge: taken.challenge,
        expectedOrigin: taken.origin,
        expectedRPID: taken.rp_id,
        requireUserVerification: true,
      });
    } catch {
      invalidPasskey();
    }
    if (!verification.verified) invalidPasskey();
    const info = verification.registrationInfo;
    return asCaller(pgSettings, async (client) => {
      const { rows } = await client.query("select * from app_hidden.add_passkey_factor($1, $2, $3, $4, $5, $6, $7)", [
        info.credential.id,
        Buffer.from(info.credential.publicKey),
        info.credential.counter,
        info.credential.transports ?? [],
        info.credentialDeviceType,
        info.credentialBackedUp,
        input.name ?? null,
      ]);
      return { factorId: rows[0].factor_id as string, recoveryCodes: rows.map((r) => r.recovery_code).filter((c): c is string => c !== null) };
    });
  }

  async function startSignIn(pgSettings: unknown, mfaChallenge: string | null | undefined, stepUp = false) {
    const mfaChallengeId = mfaChallenge ? challengeIdOf(mfaChallenge, options.jwt) : null;
    const challenge = newChallenge();
    return asCaller(pgSettings, async (client) => {
      const { rows } = await client.query("select * from app_hidden.start_passkey_challenge($1, $2, $3, $4, $5)", [
        stepUp ? "step_up" : mfaChallengeId ? "second_factor" : "sign_in",
        challenge.text,
        rpID,
        origin,
        mfaChallengeId,
      ]);
      const row = rows[0] as { challenge_id: string; credential_ids: string[] };
      const optionsJson = await generateAuthenticationOptions({
        rpID,
        challenge: challenge.bytes,
        userVerification: "required",
        allowCredentials: row.credential_ids.map((id) => ({ id })),
      });
      return { challengeId: row.challenge_id, optionsJson: JSON.stringify(optionsJson) };
    });
  }

  /** Verifies an assertion against a challenge of one of `purposes`; returns accept_passkey's token row (null for step-up). */
  async function finishAssertion(pgSettings: unknown, input: { challengeId: string; responseJson: string }, purposes: string[]) {
    const response = parseResponse<AuthenticationResponseJSON>(input.responseJson);
    const settings = pgSettings;
    // whichever of the purposes the challenge was made for
    const taken = await asCaller(settings, async (client) => {
      for (const purpose of purposes) {
        await client.query("savepoint take");
        try {
          const { rows } = await client.query("select * from app_hidden.take_passkey_challenge($1, $2)", [input.challengeId, purpose]);
          return rows[0];
        } catch (error) {
          await client.query("rollback to savepoint take");
          if (purpose === purposes[purposes.length - 1]) throw error;
        }
      }
    });
    const credential = await asCaller(settings, async (client) =>
      (await client.query("select * from app_hidden.passkey_credential($1)", [response.id])).rows[0],
    );
    if (!credential || (taken.user_id !== null && credential.user_id !== taken.user_id)) invalidPasskey();
    let verification;
    try {
      verification = await verifyAuthenticationResponse({
        response,
        expectedChallenge: taken.challenge,
        expectedOrigin: taken.origin,
        expectedRPID: taken.rp_id,
        credential: { id: response.id, publicKey: new Uint8Array(credential.public_key), counter: Number(credential.counter), transports: credential.transports },
        requireUserVerification: true,
      });
    } catch {
      invalidPasskey();
    }
    if (!verification.verified) invalidPasskey();
    return asCaller(settings, async (client) =>
      (await client.query("select (t).* from app_hidden.accept_passkey($1, $2, $3, $4) t", [
        input.challengeId,
        credential.factor_id,
        verification.authenticationInfo.newCounter,
        verification.authenticationInfo.credentialBackedUp,
      ])).rows[0],
    );
  }

  async function finishSignIn(pgSettings: unknown, input: { challengeId: string; responseJson: string }) {
    return { jwtToken: sign(await finishAssertion(pgSettings, input, ["second_factor", "sign_in"])) };
  }

  async function finishStepUp(pgSettings: unknown, input: { challengeId: string; responseJson: string }) {
    await finishAssertion(pgSettings, input, ["step_up"]);
    return { success: true };
  }

  const field = <I, R extends object>(fn: (pgSettings: unknown, input: I) => Promise<R>) =>
    function plan(_$root: unknown, fieldArgs: any) {
      const $input = fieldArgs.getRaw("input");
      const $pgSettings = context().get("pgSettings");
      return sideEffect([$input, $pgSettings], async ([input, pgSettings]) => withMutationId(input, await fn(pgSettings, input as I)));
    };
  const pass = (...names: string[]) => Object.fromEntries(names.map((n) => [n, ($p: any) => get($p, n)]));

  return extendSchema(() => ({
    typeDefs: /* GraphQL */ `
      input StartPasskeyRegistrationInput {
        clientMutationId: String
      }
      type PasskeyOptionsPayload {
        clientMutationId: String
        "Give it back with the browser's answer."
        challengeId: UUID!
        "PublicKeyCredentialCreationOptionsJSON / RequestOptionsJSON for navigator.credentials (base64url fields)."
        optionsJson: String!
      }
      input FinishPasskeyRegistrationInput {
        clientMutationId: String
        challengeId: UUID!
        "The RegistrationResponseJSON of navigator.credentials.create (base64url fields)."
        responseJson: String!
        name: String
      }
      type FinishPasskeyRegistrationPayload {
        clientMutationId: String
        factorId: UUID!
        "With the account's first factor: its ten recovery codes, shown this once; otherwise empty."
        recoveryCodes: [String!]!
      }
      input StartPasskeySignInInput {
        clientMutationId: String
        "The MFA challenge authenticate answered, to use a passkey as the second factor; without it, a passwordless sign-in."
        mfaChallenge: String
      }
      input FinishPasskeySignInInput {
        clientMutationId: String
        challengeId: UUID!
        "The AuthenticationResponseJSON of navigator.credentials.get (base64url fields)."
        responseJson: String!
      }
      type FinishPasskeySignInPayload {
        clientMutationId: String
        "The session token (aal2)."
        jwtToken: String!
      }
      input StartPasskeyStepUpInput {
        clientMutationId: String
      }
      input FinishPasskeyStepUpInput {
        clientMutationId: String
        challengeId: UUID!
        "The AuthenticationResponseJSON of navigator.credentials.get (base64url fields)."
        responseJson: String!
      }
      type FinishPasskeyStepUpPayload {
        clientMutationId: String
        success: Boolean!
      }
      extend type Mutation {
        "Starts registering a passkey (signed in; a second factor in the last 15 minutes when you already have one)."
        startPasskeyRegistration(input: StartPasskeyRegistrationInput!): PasskeyOptionsPayload
        "Stores the passkey the browser created; this session becomes aal2."
        finishPasskeyRegistration(input: FinishPasskeyRegistrationInput!): FinishPasskeyRegistrationPayload
        "Starts a passkey sign-in: as the second factor of an MFA challenge, or passwordless."
        startPasskeySignIn(input: StartPasskeySignInInput!): PasskeyOptionsPayload
        "Checks the browser's passkey answer and opens an aal2 session."
        finishPasskeySignIn(input: FinishPasskeySignInInput!): FinishPasskeySignInPayload
        "Starts a step-up with one of your passkeys (signed in)."
        startPasskeyStepUp(input: StartPasskeyStepUpInput!): PasskeyOptionsPayload
        "Checks the passkey answer; this session is aal2 from now (the step-up operations' 15 minutes start)."
        finishPasskeyStepUp(input: FinishPasskeyStepUpInput!): FinishPasskeyStepUpPayload
      }
    `,
    objects: {
      Mutation: {
        plans: {
          startPasskeyRegistration: field((s) => startRegistration(s)),
          finishPasskeyRegistration: field(finishRegistration),
          startPasskeySignIn: field((s, input: { mfaChallenge?: string | null }) => startSignIn(s, input.mfaChallenge)),
          finishPasskeySignIn: field(finishSignIn),
          startPasskeyStepUp: field((s) => startSignIn(s, null, true)),
          finishPasskeyStepUp: field(finishStepUp),
        },
      },
      PasskeyOptionsPayload: { plans: pass("clientMutationId", "challengeId", "optionsJson") },
      FinishPasskeyRegistrationPayload: { plans: pass("clientMutationId", "factorId", "recoveryCodes") },
      FinishPasskeySignInPayload: { plans: pass("clientMutationId", "jwtToken") },
      FinishPasskeyStepUpPayload: { plans: pass("clientMutationId", "success") },
    },
  }));
}
