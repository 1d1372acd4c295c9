// Second factors over HTTP for the MFA tests (test/api/mfa, test/adversarial/mfa): a TOTP app
// enrolled through enrollTotp/confirmTotp with codes made by otplib at the pinned time the test
// server checks them against (its `mfa.now`).

import { generate } from "otplib";
import type { TestServer } from "./server.ts";
import { register, signIn, type RegisteredUser } from "./accounts.ts";

export const MFA_TEST_START = 1767225600; // 2026-01-01T00:00:00Z

export const ENROLL = `mutation { enrollTotp(input: {name: "Phone"}) { factorId secret uri } }`;
export const CONFIRM = `mutation($f: UUID!, $c: String!) { confirmTotp(input: {factorId: $f, code: $c}) { recoveryCodes } }`;
export const VERIFY = `mutation($ch: String!, $c: String!) { verifyMfa(input: {challenge: $ch, code: $c}) { jwtToken } }`;
export const STEP_UP = `mutation($c: String!) { stepUpMfa(input: {code: $c}) { success } }`;

export const codeAt = (secret: string, epoch: number) => generate({ secret, epoch });

export interface Clock {
  now: number;
}

/** A registered user with a confirmed TOTP app; the clock moves on one step after confirming. */
export async function enrolledUser(server: TestServer, clock: Clock): Promise<RegisteredUser & { secret: string; recoveryCodes: string[] }> {
  const user = await register(server);
  const e = await server.graphql(ENROLL, {}, user.token);
  if (e.errors) throw new Error(`enrollTotp failed: ${JSON.stringify(e.errors)}`);
  const { factorId, secret } = e.data.enrollTotp;
  const c = await server.graphql(CONFIRM, { f: factorId, c: await codeAt(secret, clock.now) }, user.token);
  if (c.errors) throw new Error(`confirmTotp failed: ${JSON.stringify(c.errors)}`);
  clock.now += 30;
  return { ...user, secret, recoveryCodes: c.data.confirmTotp.recoveryCodes };
}

/** The MFA challenge authenticate answers for an enrolled user. */
export async function challengeFor(server: TestServer, user: { email: string; password: string }): Promise<string> {
  const r = await signIn(server, user.email, user.password);
  if (r.errors) throw new Error(`authenticate failed: ${JSON.stringify(r.errors)}`);
  return r.data.authenticate.jwtToken;
}
