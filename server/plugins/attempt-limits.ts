// Brute-force limits: before each limited mutation runs, the attempt is counted in SQL
// (app_hidden.count_attempt, db/functions/020-accounts/attempt-limits.sql) in a transaction of its
// own that commits, as the caller, with the caller's client address. The mutation's own
// transaction cannot count it: a wrong password raises, and the raise rolls back everything the
// transaction wrote. Over the limit count_attempt raises TOO_MANY_ATTEMPTS (extensions.retryAfter)
// and the mutation does not run at all, so a correct password does not get through either.
// Aliases count once each: 30 aliased authenticate calls are 30 attempts.
//
// Which mutation is which action, and which input field names its subject, is listed here; the
// limits themselves and what a subject means are SQL's.

import type pg from "pg";
import { wrapPlans } from "postgraphile/utils";
import { constant, context, sideEffect } from "postgraphile/grafast";
import { withSettings } from "../../db/transaction.ts";

/** GraphQL mutation -> [action in SQL, input field holding the subject (null: the caller)]. */
export const LIMITED_MUTATIONS: Record<string, [string, string | null]> = {
  authenticate: ["authenticate", "email"],
  register: ["register", "email"],
  forgotPassword: ["forgot_password", "email"],
  verifyEmail: ["verify_email", "token"],
  resetPassword: ["reset_password", null],
  resendVerificationEmail: ["resend_verification_email", null],
  changeEmail: ["change_email", null],
  changePassword: ["password_check", null],
  deleteAccount: ["password_check", null],
};

type PgSettings = Record<string, string | undefined>;

export function makeAttemptLimitsPlugin(pool: pg.Pool): GraphileConfig.Plugin {
  const rules: Record<string, (plan: any, $source: any, fieldArgs: any) => any> = {};
  for (const [field, [action, subjectField]] of Object.entries(LIMITED_MUTATIONS)) {
    rules[field] = (plan, _$source, fieldArgs) => {
      const $subject = subjectField ? fieldArgs.getRaw(["input", subjectField]) : constant(null);
      const $pgSettings = context().get("pgSettings");
      // A side effect: every step the mutation plans after it waits for it, and none runs if it fails.
      sideEffect([$subject, $pgSettings], async ([subject, pgSettings]) => {
        await withSettings(pool, (pgSettings ?? {}) as PgSettings, (client) =>
          client.query("select app_hidden.count_attempt($1, $2)", [action, typeof subject === "string" ? subject : null]),
        );
        return null;
      });
      return plan();
    };
  }
  return wrapPlans({ Mutation: rules }, { name: "TenantbaseAttemptLimitsPlugin" });
}
