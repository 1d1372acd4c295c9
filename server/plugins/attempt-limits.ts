// Brute-force limits: before each limited mutation runs, the attempt is checked in SQL
// (app_hidden.check_attempt, db/functions/020-accounts/attempt-limits.sql) in a transaction of its
// own that commits, as the caller, with the caller's client address. The mutation's own
// transaction cannot count it: a wrong password raises, and the raise rolls back everything the
// transaction wrote. Over a hard limit (per client address, per address and account, per user)
// check_attempt raises TOO_MANY_ATTEMPTS (extensions.retryAfter) and the mutation does not run.
// An account being slowed down answers a number of seconds instead: the caller's turn in the
// account's queue is committed with the count, then the refusal is raised in a second statement
// (app_hidden.refuse_attempt), so the turn survives the refusal. Aliases count once each.
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
        const settings = (pgSettings ?? {}) as PgSettings;
        const wait = await withSettings(pool, settings, async (client) => {
          const { rows } = await client.query<{ wait: number }>("select app_hidden.check_attempt($1, $2) as wait", [
            action,
            typeof subject === "string" ? subject : null,
          ]);
          return rows[0]?.wait ?? 0;
        });
        if (wait > 0) {
          // throws TOO_MANY_ATTEMPTS with retryAfter (a business error, passed through by maskError)
          await withSettings(pool, settings, (client) => client.query("select app_hidden.refuse_attempt($1)", [wait]));
        }
        return null;
      });
      return plan();
    };
  }
  return wrapPlans({ Mutation: rules }, { name: "TenantbaseAttemptLimitsPlugin" });
}
